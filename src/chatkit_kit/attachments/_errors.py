"""Exceptions raised by the attachment backends."""

from __future__ import annotations

from .._http import ClientRequestError
from ..errors import ChatKitKitError


class AttachmentError(ClientRequestError, ChatKitKitError):
    """Base class of chatkit-kit attachment errors (a `ChatKitKitError`, see chatkit_kit.errors).

    Caused by the client's upload, so the endpoint answers with `status_code`; retrying the
    same request will not help.
    """

    status_code = 400
    """The HTTP status an endpoint should answer with."""
    code = "invalid_attachment"
    """The error code in the endpoint's JSON error body; it always matches `status_code`."""


class AttachmentPolicyError(AttachmentError, ValueError):
    """A declared or uploaded attachment breaks the upload policy; the message names the limit."""

    code = "attachment_not_allowed"


class AttachmentTooLargeError(AttachmentPolicyError):
    """The attachment is larger than the policy's `max_size`."""

    status_code = 413
    code = "attachment_too_large"


class AttachmentTypeNotAllowedError(AttachmentPolicyError):
    """The attachment's MIME type is not in the policy's allowlist."""

    status_code = 415
    code = "unsupported_media_type"


class AttachmentVerificationError(AttachmentError):
    """The stored bytes do not match the attachment's declared size or type."""

    status_code = 409
    code = "attachment_mismatch"


class InvalidUploadError(AttachmentError):
    """An upload request body is malformed or truncated."""

    code = "invalid_upload"
