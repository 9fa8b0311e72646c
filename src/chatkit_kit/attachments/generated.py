"""Generated images stored as attachments: the URL marker that links an image to its attachment.

A `GeneratedImageItem` stores only a URL. When the image's bytes live in an attachment backend
(see `BlobAttachmentStore.save_generated_image` and `chatkit_kit.agents.AttachmentImageConverter`),
the URL carries the attachment id in its fragment (`#chatkit-kit-attachment=atc_...`), which
browsers never send to a server. `StoreWithAttachments` re-presents such URLs on the way out
(fresh presigned or signed URLs), and `AttachmentAwareConverter` sends the image bytes to the
model instead of a URL it could not fetch.
"""

from __future__ import annotations

from chatkit.types import Attachment

__all__ = ["GENERATED_IMAGE_MARKER", "generated_image_attachment_id", "generated_image_url"]

GENERATED_IMAGE_MARKER = "chatkit-kit-attachment="
"""The fragment prefix naming the attachment that holds a generated image."""


def generated_image_url(attachment: Attachment) -> str:
    """The URL to store for a generated image held by `attachment` (its preview URL, marked)."""
    preview = getattr(attachment, "preview_url", None)
    if preview is None:
        raise ValueError(f"attachment {attachment.id} has no preview_url to show the image at")
    base = str(preview).split("#", 1)[0]
    return f"{base}#{GENERATED_IMAGE_MARKER}{attachment.id}"


def generated_image_attachment_id(url: str) -> str | None:
    """The attachment id in a URL made by `generated_image_url`, else None."""
    _, sep, fragment = url.partition("#")
    if not sep or not fragment.startswith(GENERATED_IMAGE_MARKER):
        return None
    attachment_id = fragment[len(GENERATED_IMAGE_MARKER) :]
    return attachment_id or None
