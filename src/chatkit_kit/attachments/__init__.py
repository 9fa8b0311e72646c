"""Attachment backends for ChatKit: two-phase uploads to S3 and direct uploads to our routes.

A backend keeps attachment metadata in your `Store`; `StoreWithAttachments(store, backend)` is
the store to give ChatKit (presented attachments, the opt-in thread-delete cascade).

`S3AttachmentStore` and `S3BlobStorage` need the `s3` extra (boto3);
`DirectUploadAttachmentStore` needs the `server` extra (starlette, python-multipart). They are
imported lazily; importing one whose extra is missing raises an ImportError naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._optional import lazy_exports
from ._backend import METADATA_KEY, AttachmentContentSource, BlobAttachmentStore
from ._blobs import (
    BlobInfo,
    BlobNotFoundError,
    BlobStorage,
    LocalBlobStorage,
    OwnerBlobStorage,
)
from ._compose import AttachmentPresenter, StoreWithAttachments, ThreadDeleteListener
from ._errors import (
    AttachmentError,
    AttachmentPolicyError,
    AttachmentTooLargeError,
    AttachmentTypeNotAllowedError,
    AttachmentVerificationError,
    InvalidUploadError,
)
from ._policy import DEFAULT_ALLOWED_MIME_TYPES, DEFAULT_IMAGE_MIME_TYPES, UploadPolicy

if TYPE_CHECKING:  # pragma: no cover
    from ._s3_blobs import S3BlobStorage
    from .direct import DirectUploadAttachmentStore
    from .s3 import S3AttachmentStore

__all__ = [
    "DEFAULT_ALLOWED_MIME_TYPES",
    "DEFAULT_IMAGE_MIME_TYPES",
    "METADATA_KEY",
    "AttachmentContentSource",
    "AttachmentError",
    "AttachmentPolicyError",
    "AttachmentPresenter",
    "AttachmentTooLargeError",
    "AttachmentTypeNotAllowedError",
    "AttachmentVerificationError",
    "BlobAttachmentStore",
    "BlobInfo",
    "BlobNotFoundError",
    "BlobStorage",
    "DirectUploadAttachmentStore",
    "InvalidUploadError",
    "LocalBlobStorage",
    "OwnerBlobStorage",
    "S3AttachmentStore",
    "S3BlobStorage",
    "StoreWithAttachments",
    "ThreadDeleteListener",
    "UploadPolicy",
]

_LAZY: dict[str, tuple[str, str]] = {
    "S3AttachmentStore": ("s3", "s3"),
    "S3BlobStorage": ("_s3_blobs", "s3"),
    "DirectUploadAttachmentStore": ("direct", "server"),
}


__getattr__ = lazy_exports(__name__, _LAZY)
