"""What both attachment backends share: owner-scoped keys, ownership checks, verification,
deletes, the thread cascade and the orphan sweep."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, Protocol, runtime_checkable

from chatkit.store import AttachmentStore, NotFoundError, Store, TContext
from chatkit.types import Attachment, ImageAttachment
from pydantic import AnyUrl

from .._images import sniff_image_type
from ..stores import AttachmentIndex, OwnerResolver, OwnerScopedStore, check_owner, default_owner
from ._blobs import BlobInfo, BlobStorage, OwnerBlobStorage, check_key
from ._compose import StoreWithAttachments
from ._errors import AttachmentPolicyError, AttachmentTooLargeError, AttachmentVerificationError
from ._policy import SIGNATURE_BYTES, UploadPolicy

METADATA_KEY = "chatkit_kit"
"""Key of the backend's record inside `Attachment.metadata` (never sent to clients)."""


@runtime_checkable
class AttachmentContentSource(Protocol):
    """Access to attachment bytes for converters that pass attachments to a model."""

    async def read_attachment_bytes(self, attachment: Attachment, context: Any) -> bytes:
        """Return the bytes of the context owner's attachment.

        Raises NotFoundError when the attachment or its bytes are missing (or belong to someone
        else) and AttachmentVerificationError when the bytes do not match the declared size or
        type.
        """
        ...

    async def attachment_download_url(
        self, attachment: Attachment, context: Any, *, expires_in: int = 300
    ) -> str | None:
        """Return a short-lived URL a model can fetch the bytes from, or None if there is none."""
        ...

    async def verify_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        """Confirm the bytes exist with the declared size and type; return the attachment with
        `upload_descriptor` cleared. Raises as `read_attachment_bytes`."""
        ...


class BlobAttachmentStore(AttachmentStore[TContext], Generic[TContext]):
    """Base of the chatkit-kit attachment backends (an upstream `AttachmentStore`).

    Attachment metadata lives in the app's `store`; this class keeps the object key and the
    declared size in `attachment.metadata["chatkit_kit"]`, and every operation first loads the
    attachment with `store.load_attachment(id, context)`, so only its owner reaches the bytes.
    The backend only reads and writes `store`; give ChatKit `StoreWithAttachments(store,
    backend)` so attachments are presented on the way out and thread deletes can cascade.

    Two kinds of key: the *owner key* is the string that scopes a user's rows (the same one
    `OwnerScopedStore.owner_key` returns); an *object key* names the bytes in `blobs`.
    """

    backend_name = "blob"

    def __init__(
        self,
        store: Store[TContext],
        blobs: BlobStorage,
        *,
        policy: UploadPolicy | None = None,
        key_prefix: str = "attachments/",
        owner: OwnerResolver | None = None,
        delete_with_thread: bool = False,
    ) -> None:
        if isinstance(store, StoreWithAttachments):
            raise TypeError(
                "pass the store itself, not a StoreWithAttachments: the backend reads the store "
                "directly, and StoreWithAttachments(store, backend) composes them afterwards"
            )
        if key_prefix:
            if not key_prefix.endswith("/"):
                raise ValueError(f"key_prefix {key_prefix!r} must be empty or end with '/'")
            check_key(key_prefix + "x")
        self.store = store
        self.blobs = blobs
        self.policy = policy if policy is not None else UploadPolicy()
        self.key_prefix = key_prefix
        self._owner = owner
        self.delete_with_thread = delete_with_thread

    # Identity and keys

    def generate_attachment_id(self, mime_type: str, context: TContext) -> str:
        """Return `atc_` + 32 hex digits (128 random bits; upstream's default has 32 bits)."""
        return f"atc_{uuid.uuid4().hex}"

    def owner_key(self, context: Any) -> str:
        """The owner key of `context`: the store's own when it is an `OwnerScopedStore` and the
        backend has no `owner=` resolver of its own."""
        if self._owner is None and isinstance(self.store, OwnerScopedStore):
            return self.store.owner_key(context)
        return check_owner((self._owner or default_owner)(context))

    def _object_prefix(self, owner: str) -> str:
        """The prefix of every object key of `owner`; owner keys never appear in it verbatim."""
        return f"{self.key_prefix}{hashlib.sha256(owner.encode()).hexdigest()}/"

    def _new_object_key(self, owner: str) -> str:
        """A fresh object key for `owner`; nothing in it comes from user input."""
        return f"{self._object_prefix(owner)}{uuid.uuid4().hex}"

    async def _put(
        self,
        owner: str,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None,
    ) -> BlobInfo:
        """Write a blob of `owner`: with `put_for_owner` when the storage needs the owner."""
        if isinstance(self.blobs, OwnerBlobStorage):
            return await self.blobs.put_for_owner(
                owner, key, data, content_type=content_type, max_size=max_size
            )
        return await self.blobs.put(key, data, content_type=content_type, max_size=max_size)

    def _new_metadata(self, object_key: str, size: int) -> dict[str, Any]:
        """The `Attachment.metadata` of a new attachment: this backend's record."""
        record = {
            "backend": self.backend_name,
            "key": object_key,
            "size": size,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        return {METADATA_KEY: record}

    def _record(self, attachment: Attachment) -> dict[str, Any] | None:
        """This backend's record in `attachment.metadata`, or None for a foreign attachment."""
        record = (attachment.metadata or {}).get(METADATA_KEY)
        if not isinstance(record, dict) or record.get("backend") != self.backend_name:
            return None
        if not isinstance(record.get("key"), str) or not isinstance(record.get("size"), int):
            return None
        return record

    def _object_key(self, attachment: Attachment, owner: str) -> str | None:
        """The object key of `attachment` if it lies under `owner`'s prefix, else None."""
        record = self._record(attachment)
        if record is None:
            return None
        key: str = record["key"]
        if not key.startswith(self._object_prefix(owner)):
            return None
        return key

    # Loading from the store

    async def _load(self, attachment_id: str, context: Any) -> Attachment:
        """The context owner's attachment as stored; NotFoundError otherwise."""
        return await self.store.load_attachment(attachment_id, context)

    async def _load_with_object_key(
        self, attachment_id: str, context: Any
    ) -> tuple[Attachment, str]:
        """The owner's attachment as stored and its object key; NotFoundError if it has none."""
        stored = await self._load(attachment_id, context)
        key = self._object_key(stored, self.owner_key(context))
        if key is None:
            raise NotFoundError(f"Attachment {attachment_id} has no bytes in this backend")
        return stored, key

    # Verification

    def _check_object(self, attachment: Attachment, info: BlobInfo) -> None:
        """Raise AttachmentVerificationError unless `info` matches the declared size and type."""
        record = self._record(attachment)
        declared = None if record is None else record["size"]
        if declared is not None and info.size != declared:
            raise AttachmentVerificationError(
                f"attachment {attachment.id}: stored object has {info.size} bytes, "
                f"declared {declared}"
            )
        if info.size > self.policy.max_size:
            raise AttachmentVerificationError(
                f"attachment {attachment.id}: stored object has {info.size} bytes, over the "
                f"limit of {self.policy.max_size} bytes"
            )
        if info.content_type is not None:
            stored_type = info.content_type.split(";", 1)[0].strip().lower()
            if stored_type != attachment.mime_type:
                raise AttachmentVerificationError(
                    f"attachment {attachment.id}: stored object has type {stored_type!r}, "
                    f"declared {attachment.mime_type!r}"
                )

    async def verify_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        stored, key = await self._load_with_object_key(attachment.id, context)
        info = await self.blobs.stat(key)
        if info is None:
            raise NotFoundError(f"Attachment {attachment.id} has not been uploaded")
        self._check_object(stored, info)
        if self.policy.is_image(stored.mime_type):
            # A two-phase upload's bytes came straight from the client: the image it declared
            # must start like one, as a direct upload's must.
            await self._check_image_signature(stored, key)
        return attachment.model_copy(update={"upload_descriptor": None})

    async def _check_image_signature(self, attachment: Attachment, key: str) -> None:
        """AttachmentVerificationError unless the stored bytes start as their image type does."""
        head = b""
        chunks = self.blobs.stream(key, SIGNATURE_BYTES)
        try:
            async for chunk in chunks:
                head += chunk
                if len(head) >= SIGNATURE_BYTES:
                    break
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        try:
            self.policy.check_signature(attachment.mime_type, head[:SIGNATURE_BYTES])
        except AttachmentPolicyError as exc:
            raise AttachmentVerificationError(f"attachment {attachment.id}: {exc}") from None

    async def read_attachment_bytes(self, attachment: Attachment, context: Any) -> bytes:
        stored, key = await self._load_with_object_key(attachment.id, context)
        info = await self.blobs.stat(key)
        if info is None:
            raise NotFoundError(f"Attachment {attachment.id} has not been uploaded")
        self._check_object(stored, info)
        data = await self.blobs.get(key)
        self._check_object(stored, BlobInfo(len(data), None, info.modified))
        try:
            self.policy.check_signature(stored.mime_type, data[:16])
        except AttachmentPolicyError as exc:
            raise AttachmentVerificationError(f"attachment {attachment.id}: {exc}") from None
        return data

    # Generated images

    async def save_generated_image(
        self, data: bytes, *, thread_id: str, context: Any, name: str = "generated-image"
    ) -> ImageAttachment:
        """Store model-generated image bytes as an image attachment of `thread_id`.

        The bytes go to this backend's blob storage under the context owner's prefix; the
        attachment row (with `thread_id` set, so thread deletes, `erase_owner` and `prune` with
        this backend remove the bytes) is saved in the store. Returns the attachment as
        presented (its `preview_url` is where the owner can fetch the image). ValueError when
        `data` is not a PNG, JPEG, GIF or WebP image; AttachmentTooLargeError over
        `policy.max_size`.
        """
        mime_type = sniff_image_type(data)
        if mime_type is None:
            raise ValueError("generated image bytes are not a PNG, JPEG, GIF or WebP image")
        if len(data) > self.policy.max_size:
            raise AttachmentTooLargeError(
                f"generated image of {len(data)} bytes exceeds the limit of "
                f"{self.policy.max_size} bytes"
            )
        owner = self.owner_key(context)
        key = self._new_object_key(owner)
        metadata = self._new_metadata(key, len(data))
        metadata[METADATA_KEY]["generated"] = True
        extension = mime_type.rsplit("/", 1)[-1].replace("jpeg", "jpg")
        attachment = ImageAttachment(
            id=self.generate_attachment_id(mime_type, context),
            name=name if "." in name else f"{name}.{extension}",
            mime_type=mime_type,
            preview_url=AnyUrl("https://generated-image.invalid/"),
            thread_id=thread_id,
            metadata=metadata,
        )
        await self._put(owner, key, data, content_type=mime_type, max_size=self.policy.max_size)
        try:
            presented = await self.present_generated_image(attachment, context)
            assert isinstance(presented, ImageAttachment)
            await self.store.save_attachment(presented, context)
        except BaseException:
            await self.blobs.delete(key)
            raise
        return presented

    async def present_generated_image(self, attachment: Attachment, context: Any) -> Attachment:
        """The attachment with a `preview_url` the owner can fetch; subclasses present it."""
        present = getattr(self, "present_attachment", None)
        if present is None:  # pragma: no cover - both backends present attachments
            return attachment
        presented: Attachment = await present(attachment, context)
        return presented

    async def _delete_generated_images(self, thread_id: str, context: Any) -> None:
        owner = self.owner_key(context)
        for attachment in await self._index().list_thread_attachments(thread_id, context):
            record = self._record(attachment)
            if record is None or not record.get("generated"):
                continue
            key = self._object_key(attachment, owner)
            if key is not None:
                await self.blobs.delete(key)
            await self.store.delete_attachment(attachment.id, context)

    # Deletes

    async def delete_attachment(self, attachment_id: str, context: TContext) -> None:
        """Delete the bytes of the context owner's attachment; unknown or foreign ids are no-ops.

        ChatKit then calls `Store.delete_attachment` (docs/contract.md#attachment-delete).
        """
        try:
            _, key = await self._load_with_object_key(attachment_id, context)
        except NotFoundError:
            return
        await self.blobs.delete(key)

    def _index(self) -> AttachmentIndex:
        if not isinstance(self.store, AttachmentIndex):
            raise TypeError(
                f"{type(self.store).__name__} does not implement "
                "chatkit_kit.stores.AttachmentIndex (list_thread_attachments, "
                "list_unattached_attachments, delete_orphan_attachment), which thread cascades "
                "and orphan sweeps need; use a chatkit-kit store"
            )
        return self.store

    async def delete_thread_attachments(self, thread_id: str, context: Any) -> int:
        """Delete bytes and metadata of the context owner's attachments sent in `thread_id`.

        Returns how many attachments were deleted.
        """
        owner = self.owner_key(context)
        attachments = await self._index().list_thread_attachments(thread_id, context)
        for attachment in attachments:
            key = self._object_key(attachment, owner)
            if key is not None:
                await self.blobs.delete(key)
            await self.store.delete_attachment(attachment.id, context)
        return len(attachments)

    async def erase_attachment_bytes(self, owner: str, attachments: Sequence[Attachment]) -> None:
        """`AttachmentBytesEraser`: delete the bytes of `owner`'s attachments.

        Pass the backend as `attachments=` to a store's `erase_owner` or `prune`; they call this
        before deleting the attachment rows. Attachments of another backend, or whose object key
        is not under `owner`'s prefix, are left alone.
        """
        for attachment in attachments:
            key = self._object_key(attachment, owner)
            if key is not None:
                await self.blobs.delete(key)

    async def before_thread_delete(self, thread_id: str, context: Any) -> None:
        """`ThreadDeleteListener`: with `delete_with_thread=True`, delete the thread's
        attachments before `StoreWithAttachments.delete_thread` deletes the thread; without it,
        still the thread's generated images (`save_generated_image`)."""
        if self.delete_with_thread:
            await self.delete_thread_attachments(thread_id, context)
        elif isinstance(self.store, AttachmentIndex):
            # Generated images belong to the thread alone: they always go with it.
            await self._delete_generated_images(thread_id, context)

    async def sweep_orphans(self, older_than: timedelta, *, limit: int = 1000) -> int:
        """Delete bytes and metadata of this backend's attachments that were never sent in a
        message and were created more than `older_than` ago; return how many were deleted.

        Run it periodically (for example hourly with `older_than=timedelta(days=1)`). The bytes
        go first, then the metadata (only while it still has no `thread_id`): when the storage is
        down (AttachmentStorageUnavailableError) the row stays and the next sweep tries again, so
        no object is ever left that nothing points to. An attachment sent in the instant between
        the two steps, long after its upload, loses its bytes (reads raise NotFoundError).
        """
        if older_than < timedelta(0):
            raise ValueError(f"older_than must not be negative, got {older_than}")
        index = self._index()
        cutoff = datetime.now(timezone.utc) - older_than
        deleted = 0
        while deleted < limit:
            rows = await index.list_unattached_attachments(cutoff, min(100, limit - deleted))
            if not rows:
                break
            for row in rows:
                if self._record(row.attachment) is None:
                    continue
                key = self._object_key(row.attachment, row.owner)
                if key is not None:
                    await self.blobs.delete(key)
                if await index.delete_orphan_attachment(row.owner, row.attachment.id):
                    deleted += 1
            cutoff = rows[-1].saved_at
        return deleted
