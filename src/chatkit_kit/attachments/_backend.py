"""What both attachment backends share: owner-scoped keys, ownership checks, verification,
deletes, the thread cascade and the orphan sweep."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, Protocol, runtime_checkable

from chatkit.store import AttachmentStore, NotFoundError, Store, TContext
from chatkit.types import Attachment

from ..stores._base import OwnerScopedStore
from ..stores._index import AttachmentIndex
from ..stores._rules import OwnerResolver, default_owner, resolve_owner
from ._blobs import BlobInfo, BlobStorage, check_key
from ._errors import AttachmentPolicyError, AttachmentVerificationError
from ._policy import UploadPolicy

METADATA_KEY = "chatkit_kit"
"""Key of the backend's record inside `Attachment.metadata` (never sent to clients)."""

_RAW: ContextVar[bool] = ContextVar("chatkit_kit_attachments_raw", default=False)


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

    Attachment metadata lives in the app's `Store`; this class keeps the object key and the
    declared size in `attachment.metadata["chatkit_kit"]`, and every operation first loads the
    attachment through `store.load_attachment(id, context)`, so only its owner reaches the bytes.
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
        """The owner key of `context`: the store's own resolver when it has one."""
        if self._owner is None and isinstance(self.store, OwnerScopedStore):
            return self.store.owner_key(context)
        return resolve_owner(self._owner or default_owner, context)

    def owner_prefix(self, owner: str) -> str:
        """The key prefix of every object of `owner`; owner keys never appear in keys verbatim."""
        return f"{self.key_prefix}{hashlib.sha256(owner.encode()).hexdigest()}/"

    def new_key(self, owner: str) -> str:
        """A fresh object key for `owner`; nothing in it comes from user input."""
        return f"{self.owner_prefix(owner)}{uuid.uuid4().hex}"

    def make_metadata(self, key: str, size: int) -> dict[str, Any]:
        """The integration metadata of a new attachment."""
        record = {
            "backend": self.backend_name,
            "key": key,
            "size": size,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        return {METADATA_KEY: record}

    def record_of(self, attachment: Attachment) -> dict[str, Any] | None:
        """This backend's record in `attachment.metadata`, or None for a foreign attachment."""
        record = (attachment.metadata or {}).get(METADATA_KEY)
        if not isinstance(record, dict) or record.get("backend") != self.backend_name:
            return None
        if not isinstance(record.get("key"), str) or not isinstance(record.get("size"), int):
            return None
        return record

    def key_for_owner(self, attachment: Attachment, owner: str) -> str | None:
        """The object key of `attachment` if it lies under `owner`'s prefix, else None."""
        record = self.record_of(attachment)
        if record is None:
            return None
        key: str = record["key"]
        if not key.startswith(self.owner_prefix(owner)):
            return None
        return key

    # Loading through the store

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[None]:
        """Within this block, stores skip this backend's presenter (no URL refresh, no HEAD)."""
        token = _RAW.set(True)
        try:
            yield
        finally:
            _RAW.reset(token)

    @staticmethod
    def presenting_disabled() -> bool:
        return _RAW.get()

    async def load_owned(self, attachment_id: str, context: Any) -> Attachment:
        """Load the context owner's attachment from the store; NotFoundError otherwise."""
        async with self.raw():
            return await self.store.load_attachment(attachment_id, context)

    async def owned_key(self, attachment_id: str, context: Any) -> tuple[Attachment, str]:
        """Load the owner's attachment and its object key; NotFoundError if it has none."""
        stored = await self.load_owned(attachment_id, context)
        key = self.key_for_owner(stored, self.owner_key(context))
        if key is None:
            raise NotFoundError(f"Attachment {attachment_id} has no bytes in this backend")
        return stored, key

    # Verification

    def check_blob(self, attachment: Attachment, info: BlobInfo) -> None:
        """Raise AttachmentVerificationError unless `info` matches the declared size and type."""
        record = self.record_of(attachment)
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
        stored, key = await self.owned_key(attachment.id, context)
        info = await self.blobs.stat(key)
        if info is None:
            raise NotFoundError(f"Attachment {attachment.id} has not been uploaded")
        self.check_blob(stored, info)
        return attachment.model_copy(update={"upload_descriptor": None})

    async def read_attachment_bytes(self, attachment: Attachment, context: Any) -> bytes:
        stored, key = await self.owned_key(attachment.id, context)
        info = await self.blobs.stat(key)
        if info is None:
            raise NotFoundError(f"Attachment {attachment.id} has not been uploaded")
        self.check_blob(stored, info)
        data = await self.blobs.get(key)
        self.check_blob(stored, BlobInfo(len(data), None, info.modified))
        try:
            self.policy.check_signature(stored.mime_type, data[:16])
        except AttachmentPolicyError as exc:
            raise AttachmentVerificationError(f"attachment {attachment.id}: {exc}") from None
        return data

    # Deletes

    async def delete_attachment(self, attachment_id: str, context: TContext) -> None:
        """Delete the bytes of the context owner's attachment; unknown or foreign ids are no-ops.

        ChatKit then calls `Store.delete_attachment` (docs/contract.md#attachment-delete).
        """
        try:
            _, key = await self.owned_key(attachment_id, context)
        except NotFoundError:
            return
        await self.blobs.delete(key)

    def index(self) -> AttachmentIndex:
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
        attachments = await self.index().list_thread_attachments(thread_id, context)
        for attachment in attachments:
            key = self.key_for_owner(attachment, owner)
            if key is not None:
                await self.blobs.delete(key)
            await self.store.delete_attachment(attachment.id, context)
        return len(attachments)

    async def erase_attachment_bytes(self, owner: str, attachments: Sequence[Attachment]) -> None:
        """Store hook (`AttachmentBytesEraser`): delete the bytes of `owner`'s attachments.

        `erase_owner` and `prune` call it before deleting the attachment rows. Attachments of
        another backend, or whose key is not under `owner`'s prefix, are left alone.
        """
        for attachment in attachments:
            key = self.key_for_owner(attachment, owner)
            if key is not None:
                await self.blobs.delete(key)

    async def before_thread_delete(self, thread_id: str, context: Any) -> None:
        """Store hook: with `delete_with_thread=True`, delete the thread's attachments first."""
        if self.delete_with_thread:
            await self.delete_thread_attachments(thread_id, context)

    async def sweep_orphans(self, older_than: timedelta, *, limit: int = 1000) -> int:
        """Delete bytes and metadata of this backend's attachments that were never sent in a
        message and were created more than `older_than` ago; return how many were deleted.

        Run it periodically (for example hourly with `older_than=timedelta(days=1)`). The metadata
        goes first and only while it still has no `thread_id`, so an attachment sent meanwhile
        keeps its bytes.
        """
        if older_than < timedelta(0):
            raise ValueError(f"older_than must not be negative, got {older_than}")
        index = self.index()
        cutoff = datetime.now(timezone.utc) - older_than
        deleted = 0
        while deleted < limit:
            rows = await index.list_unattached_attachments(cutoff, min(100, limit - deleted))
            if not rows:
                break
            for row in rows:
                if self.record_of(row.attachment) is None:
                    continue
                if await index.delete_orphan_attachment(row.owner, row.attachment.id):
                    key = self.key_for_owner(row.attachment, row.owner)
                    if key is not None:
                        await self.blobs.delete(key)
                    deleted += 1
            cutoff = rows[-1].saved_at
        return deleted
