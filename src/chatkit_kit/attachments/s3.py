"""Two-phase uploads straight to S3 with presigned PUT URLs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Generic

from chatkit.store import Store, TContext
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentUploadDescriptor,
    FileAttachment,
    ImageAttachment,
)
from pydantic import AnyUrl

from ..stores import OwnerResolver, check_id
from ._backend import METADATA_KEY, BlobAttachmentStore
from ._policy import UploadPolicy
from ._s3_blobs import S3BlobStorage

MAX_PRESIGN_EXPIRY = 7 * 24 * 3600
"""SigV4 presigned URLs live at most 7 days."""


def _check_expiry(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int number of seconds, got {value!r}")
    if not 1 <= value <= MAX_PRESIGN_EXPIRY:
        raise ValueError(f"{what} must be 1 to {MAX_PRESIGN_EXPIRY} seconds, got {value}")
    return value


class S3AttachmentStore(BlobAttachmentStore[TContext], Generic[TContext]):
    """ChatKit's two-phase upload strategy with the bytes in S3.

    `create_attachment` checks the declared name, size and type against `policy` and returns an
    attachment whose `upload_descriptor` is a presigned PUT with `Content-Type` and
    `Content-Length` signed. Give ChatKit `StoreWithAttachments(store, backend)` so image
    `preview_url`s are re-signed whenever attachments leave the store, and the upload
    descriptor is dropped once the object is in S3. See docs/attachments.md.

    `server_side_encryption="aws:kms"` (and `kms_key_id`) has S3 encrypt every object with a KMS
    key: the presigned PUT signs the encryption headers and returns them in the descriptor's
    headers, so an upload without them is refused (docs/encryption.md).
    """

    backend_name = "s3"

    def __init__(
        self,
        store: Store[TContext],
        *,
        client: Any,
        bucket: str,
        key_prefix: str = "attachments/",
        policy: UploadPolicy | None = None,
        upload_expires_in: int = 300,
        preview_expires_in: int = 3600,
        owner: OwnerResolver | None = None,
        delete_with_thread: bool = False,
        server_side_encryption: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        self._s3 = S3BlobStorage(
            client, bucket, server_side_encryption=server_side_encryption, kms_key_id=kms_key_id
        )
        super().__init__(
            store,
            self._s3,
            policy=policy,
            key_prefix=key_prefix,
            owner=owner,
            delete_with_thread=delete_with_thread,
        )
        self.upload_expires_in = _check_expiry(upload_expires_in, "upload_expires_in")
        self.preview_expires_in = _check_expiry(preview_expires_in, "preview_expires_in")

    async def create_attachment(
        self, input: AttachmentCreateParams, context: TContext
    ) -> Attachment:
        """Validate the declared upload and return the attachment with a presigned PUT.

        Does not save it: ChatKit saves it with `Store.save_attachment` right after.
        Raises AttachmentPolicyError (a ValueError) naming the broken limit.
        """
        owner = self.owner_key(context)
        mime_type = self.policy.check(input.name, input.size, input.mime_type)
        attachment_id = check_id(self.generate_attachment_id(mime_type, context), "attachment id")
        key = self._new_object_key(owner)
        url, headers = await self._s3.presign_put(
            key,
            content_type=mime_type,
            content_length=input.size,
            expires_in=self.upload_expires_in,
        )
        fields: dict[str, Any] = {
            "id": attachment_id,
            "name": input.name,
            "mime_type": mime_type,
            "upload_descriptor": AttachmentUploadDescriptor(
                url=AnyUrl(url), method="PUT", headers=headers
            ),
            "metadata": self._new_metadata(key, input.size),
        }
        expires_at = datetime.now(timezone.utc) + timedelta(seconds=self.upload_expires_in)
        fields["metadata"][METADATA_KEY]["upload_expires_at"] = expires_at.isoformat()
        if self.policy.is_image(mime_type):
            preview = await self._s3.presign_get(key, expires_in=self.preview_expires_in)
            return ImageAttachment(preview_url=AnyUrl(preview), **fields)
        return FileAttachment(**fields)

    async def present_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        """`AttachmentPresenter`: drop a completed upload's descriptor and re-sign the preview URL.

        While an upload descriptor is set, one HEAD request checks whether the object arrived;
        if it did with another size or type, or (images) with bytes that do not start as the
        declared image type does (a read of the first bytes), AttachmentVerificationError
        is raised. A descriptor
        whose URL has expired is dropped too (the upload can no longer happen).
        """
        if self._record(attachment) is None:
            return attachment
        key = self._object_key(attachment, self.owner_key(context))
        if key is None:
            return attachment
        update: dict[str, Any] = {}
        if attachment.upload_descriptor is not None:
            info = await self._s3.stat(key)
            if info is not None:
                self._check_object(attachment, info)
                if self.policy.is_image(attachment.mime_type):
                    await self._check_image_signature(attachment, key)
                update["upload_descriptor"] = None
            elif self._upload_expired(attachment):
                update["upload_descriptor"] = None
        if isinstance(attachment, ImageAttachment):
            url = await self._s3.presign_get(key, expires_in=self.preview_expires_in)
            update["preview_url"] = AnyUrl(url)
        return attachment.model_copy(update=update) if update else attachment

    def _upload_expired(self, attachment: Attachment) -> bool:
        record = self._record(attachment) or {}
        try:
            expires_at = datetime.fromisoformat(str(record.get("upload_expires_at")))
        except ValueError:
            return False
        if expires_at.tzinfo is None:
            return False
        return expires_at <= datetime.now(timezone.utc)

    async def attachment_download_url(
        self, attachment: Attachment, context: Any, *, expires_in: int = 300
    ) -> str | None:
        """A presigned GET URL for the verified object, valid for `expires_in` seconds."""
        _check_expiry(expires_in, "expires_in")
        await self.verify_attachment(attachment, context)
        _, key = await self._load_with_object_key(attachment.id, context)
        return await self._s3.presign_get(key, expires_in=expires_in)
