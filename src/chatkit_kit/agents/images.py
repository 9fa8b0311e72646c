"""Generated images out of the database: written through the attachment backend.

Upstream's `ResponseStreamConverter.base64_image_to_url` returns a `data:` URL, so every
`GeneratedImageItem` row holds the whole image. `AttachmentImageConverter` stores the final
image as an attachment of the thread instead and returns a URL its owner can fetch (a signed
download URL for direct uploads with a signing key, the owner-only download route without one,
a presigned GET for S3), marked with the attachment id so `StoreWithAttachments` re-signs it
whenever the item is loaded. Deleting the thread or erasing the owner removes the bytes.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from chatkit.agents import ResponseStreamConverter
from chatkit.types import ThreadMetadata

from ..attachments import BlobAttachmentStore
from ..attachments.generated import generated_image_url

__all__ = ["AttachmentImageConverter"]


class AttachmentImageConverter(ResponseStreamConverter):
    """A `ResponseStreamConverter` whose generated images are stored by `backend`.

    Build one per turn (`agent_turn(..., generated_images="attachments")` does). Partial
    images (progress previews) stay `data:` URLs: they only travel in update events and are
    never stored.
    """

    def __init__(
        self,
        backend: BlobAttachmentStore[Any],
        thread: ThreadMetadata,
        context: Any,
        *,
        partial_images: int | None = None,
    ) -> None:
        super().__init__(partial_images=partial_images)
        self.backend = backend
        self.thread = thread
        self.context = context

    async def base64_image_to_url(
        self, image_id: str, base64_image: str, partial_image_index: int | None = None
    ) -> str:
        """The final image's bytes go to the backend; the URL to store for it."""
        if partial_image_index is not None:
            return await super().base64_image_to_url(image_id, base64_image, partial_image_index)
        try:
            data = base64.b64decode(base64_image, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"generated image {image_id!r} is not valid base64") from exc
        attachment = await self.backend.save_generated_image(
            data, thread_id=self.thread.id, context=self.context, name=image_id or "image"
        )
        return generated_image_url(attachment)
