"""`EncryptedStore`: a chatkit-kit store whose payloads are encrypted per owner at rest.

```python
store = EncryptedStore(SQLAlchemyStore.from_url(url, codec=EnvelopeCodec()), provider)
```

Around every call of the wrapped store it resolves the owner (the wrapped store's owner rule),
finds the owner's unwrapped data keys (the `DataKeyCache`, else the wrapped store's data-key
table, unwrapped by the `KeyProvider`; a first write creates the owner's data key) and lets the
`EnvelopeCodec` of the wrapped store seal and open payloads with them. Calls that read across
owners (the orphan sweep, a prune of every owner) load each owner's keys as they meet them.

`erase_owner` destroys the owner's data keys first (crypto-shredding), then deletes the rows:
whatever survives elsewhere (a backup, a replica, a row the erase did not reach) can no longer
be decrypted and raises `DataKeyDestroyedError`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from chatkit.store import Store, TContext
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata

from ..errors import DataKeyDestroyedError, DecryptionError, KeyProviderError
from ..stores import (
    DataKeyTable,
    ForwardingStore,
    OwnerScopedStore,
    StoredAttachment,
    StoredPayload,
    WrappedDataKey,
    check_owner,
)
from . import _aead
from .cache import DataKeyCache, OwnerKeys
from .envelope import _SCOPE, EnvelopeCodec, _KeyNeeded, _Scope, reseal, scope
from .provider import KeyProvider

_T = TypeVar("_T")
MAX_KEY_LOADS_PER_CALL = 10_000
"""How many owners' keys one call may load as it meets their rows (sweeps across owners)."""


class EncryptedStore(ForwardingStore[TContext], Generic[TContext]):
    """Encryption at rest with a data key per owner, around a store built with `EnvelopeCodec`.

    `store` must be a chatkit-kit store (its owner rule, its data-key table) whose `codec` is an
    `EnvelopeCodec`. `cache` bounds the unwrapped keys kept in memory (`DataKeyCache`).
    """

    def __init__(
        self,
        store: Store[TContext],
        provider: KeyProvider,
        *,
        cache: DataKeyCache | None = None,
    ) -> None:
        super().__init__(store)
        if not isinstance(store, OwnerScopedStore) or not isinstance(store, DataKeyTable):
            raise TypeError(
                "EncryptedStore wraps a chatkit-kit store (MemoryStore, SQLAlchemyStore, "
                f"AsyncpgStore), got {type(store).__name__}"
            )
        codec = getattr(store, "codec", None)
        if not isinstance(codec, EnvelopeCodec):
            raise TypeError(
                "the wrapped store must be built with codec=EnvelopeCodec() (its codec is "
                f"{codec!r})"
            )
        if not isinstance(provider, KeyProvider):
            raise TypeError(f"provider must implement KeyProvider, got {provider!r}")
        self._owned: OwnerScopedStore[TContext] = store
        self._keys: DataKeyTable = store
        self.codec: EnvelopeCodec = codec
        self.provider = provider
        self.cache = cache if cache is not None else DataKeyCache()
        self._creating: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"EncryptedStore({self._store!r}, {self.provider!r})"

    @property
    def key_table(self) -> DataKeyTable:
        """The wrapped store, as the table of wrapped data keys and raw payloads."""
        return self._keys

    # Keys

    async def _unwrap_all(self, owner: str, stored: list[WrappedDataKey]) -> OwnerKeys:
        ciphers: dict[int, Any] = {}
        for key in stored:
            try:
                wrapped = base64.b64decode(key.wrapped, validate=True)
            except (binascii.Error, ValueError):
                raise KeyProviderError(
                    f"the stored data key {key.version} of owner {owner!r} is not base64"
                ) from None
            ciphers[key.version] = _aead.cipher(
                await self.provider.unwrap(key.kek_id, wrapped, owner)
            )
        return OwnerKeys(owner, ciphers)

    async def load_keys(self, owner: str, *, refresh: bool = False) -> OwnerKeys:
        """`owner`'s unwrapped data keys (from the cache unless `refresh`)."""
        if not refresh:
            cached = self.cache.get(owner)
            if cached is not None:
                return cached
        keys = await self._unwrap_all(owner, await self._keys.load_data_keys(owner))
        self.cache.put(keys)
        return keys

    async def new_data_key(self, owner: str, after: OwnerKeys | None = None) -> OwnerKeys:
        """Create `owner`'s next data key version (the first, or a rotation's); the stored keys
        (including a version another process created at the same time) afterwards."""
        version = 1 if after is None or after.current is None else after.current + 1
        kek_id, wrapped = await self.provider.wrap(_aead.new_key(), owner)
        text = base64.b64encode(wrapped).decode("ascii")
        await self._keys.add_data_key(WrappedDataKey(owner, version, kek_id, text))
        return await self.load_keys(owner, refresh=True)

    async def _write_keys(self, owner: str) -> OwnerKeys:
        keys = await self.load_keys(owner)
        if keys.current is not None:
            return keys
        lock = self._creating.setdefault(owner, asyncio.Lock())
        try:
            async with lock:
                keys = await self.load_keys(owner, refresh=True)
                if keys.current is None:
                    keys = await self.new_data_key(owner)
        finally:
            if not lock.locked():
                self._creating.pop(owner, None)
        return keys

    # Running a call of the wrapped store with the keys it needs

    async def _run(
        self,
        owner: str | None,
        call: Callable[[], Awaitable[_T]],
        *,
        write: bool = False,
        thread_id: str | None = None,
    ) -> _T:
        active = _Scope(owner, thread_id=thread_id)
        if owner is not None:
            active.keys[owner] = await (self._write_keys(owner) if write else self.load_keys(owner))
        refreshed: set[str] = set()
        while True:
            token = _SCOPE.set(active)  # (what `scope` does, without a generator per call)
            try:
                return await call()
            except _KeyNeeded as missing:
                needed = missing
            finally:
                _SCOPE.reset(token)
            if len(refreshed) >= MAX_KEY_LOADS_PER_CALL:
                raise DecryptionError(
                    f"one call met rows of more than {MAX_KEY_LOADS_PER_CALL} owners whose "
                    "keys were not loaded"
                ) from None
            fresh = needed.owner not in refreshed and (
                needed.owner in active.keys or needed.owner == owner
            )
            keys = await self.load_keys(needed.owner, refresh=fresh)
            if needed.version not in keys.ciphers and not fresh:
                keys = await self.load_keys(needed.owner, refresh=True)
            refreshed.add(needed.owner)
            active.keys[needed.owner] = keys
            if needed.version not in keys.ciphers:
                active.shredded = active.shredded | {needed.owner}

    def _owner(self, context: TContext) -> str:
        return self._owned.owner_key(context)

    # Threads

    async def load_thread(self, thread_id: str, context: TContext) -> ThreadMetadata:
        thread = await self._run(
            self._owner(context), lambda: self._store.load_thread(thread_id, context)
        )
        _same_id(thread.id, thread_id, "thread")
        return thread

    async def save_thread(self, thread: ThreadMetadata, context: TContext) -> None:
        await self._run(
            self._owner(context), lambda: self._store.save_thread(thread, context), write=True
        )

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: TContext
    ) -> Page[ThreadMetadata]:
        return await self._run(
            self._owner(context), lambda: self._store.load_threads(limit, after, order, context)
        )

    async def delete_thread(self, thread_id: str, context: TContext) -> None:
        await self._run(self._owner(context), lambda: self._store.delete_thread(thread_id, context))

    # Items

    async def load_thread_items(
        self,
        thread_id: str,
        after: str | None,
        limit: int,
        order: str,
        context: TContext,
    ) -> Page[ThreadItem]:
        return await self._run(
            self._owner(context),
            lambda: self._store.load_thread_items(thread_id, after, limit, order, context),
            thread_id=thread_id,
        )

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        await self._run(
            self._owner(context),
            lambda: self._store.add_thread_item(thread_id, item, context),
            write=True,
            thread_id=thread_id,
        )

    async def save_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        await self._run(
            self._owner(context),
            lambda: self._store.save_item(thread_id, item, context),
            write=True,
            thread_id=thread_id,
        )

    async def load_item(self, thread_id: str, item_id: str, context: TContext) -> ThreadItem:
        item = await self._run(
            self._owner(context),
            lambda: self._store.load_item(thread_id, item_id, context),
            thread_id=thread_id,
        )
        _same_id(item.id, item_id, "item")
        return item

    async def delete_thread_item(self, thread_id: str, item_id: str, context: TContext) -> None:
        await self._run(
            self._owner(context),
            lambda: self._store.delete_thread_item(thread_id, item_id, context),
            thread_id=thread_id,
        )

    # Attachments

    async def save_attachment(self, attachment: Attachment, context: TContext) -> None:
        await self._run(
            self._owner(context),
            lambda: self._store.save_attachment(attachment, context),
            write=True,
        )

    async def load_attachment(self, attachment_id: str, context: TContext) -> Attachment:
        attachment = await self._run(
            self._owner(context), lambda: self._store.load_attachment(attachment_id, context)
        )
        _same_id(attachment.id, attachment_id, "attachment")
        return attachment

    async def delete_attachment(self, attachment_id: str, context: TContext) -> None:
        await self._run(
            self._owner(context), lambda: self._store.delete_attachment(attachment_id, context)
        )

    async def list_thread_attachments(self, thread_id: str, context: TContext) -> list[Attachment]:
        attachments: list[Attachment] = await self._run(
            self._owner(context),
            lambda: ForwardingStore.list_thread_attachments(self, thread_id, context),
        )
        for attachment in attachments:
            if attachment.thread_id != thread_id:
                raise DecryptionError(
                    f"the stored attachment {attachment.id!r} is listed in thread {thread_id!r} "
                    f"but was sealed in thread {attachment.thread_id!r} (its row was altered): "
                    "it is not returned",
                    row_id=attachment.id,
                )
        return attachments

    async def list_unattached_attachments(
        self, saved_before: datetime, limit: int = 100
    ) -> list[StoredAttachment]:
        return await self._run(
            None, lambda: ForwardingStore.list_unattached_attachments(self, saved_before, limit)
        )

    async def delete_orphan_attachment(self, owner: str, attachment_id: str) -> bool:
        return await self._run(
            check_owner(owner),
            lambda: ForwardingStore.delete_orphan_attachment(self, owner, attachment_id),
        )

    # Retention: crypto-shredding first

    async def erase_owner(self, owner: str, **options: Any) -> int:
        """Destroy `owner`'s data keys, then delete their rows (the wrapped store's
        `erase_owner`, with `batch_size`, `progress`, `attachments`).

        The keys go first: from then on nothing of the owner decrypts anywhere (backups,
        replicas). This call still holds the keys in memory to hand attachment records to the
        attachment backend for their bytes; a second run after an interruption finds no keys
        and deletes the remaining rows without reading them (their bytes, if any are left
        behind in a backend that is not encrypted by the owner's key, stay there).
        """
        check_owner(owner)
        held = await self.load_keys(owner, refresh=True)
        await self._keys.delete_data_keys(owner)
        self.cache.discard(owner)
        active = _Scope(owner, keys={owner: held}, shredded=frozenset({owner}))
        try:
            with scope(active):
                return await ForwardingStore.erase_owner(self, owner, **options)
        except DataKeyDestroyedError:
            options = {**options, "attachments": None}
            with scope(active):
                return await ForwardingStore.erase_owner(self, owner, **options)
        finally:
            self.cache.discard(owner)

    async def prune(self, older_than: timedelta, owner: str | None = None, **options: Any) -> int:
        target = None if owner is None else check_owner(owner)
        return await self._run(
            target, lambda: ForwardingStore.prune(self, older_than, owner, **options)
        )

    # Rewriting stored rows (rotation and migration)

    async def reseal_row(self, row: StoredPayload, keys: OwnerKeys) -> bool:
        """Seal `row` again under `keys`' current data key, unless it changed meanwhile
        (compare-and-swap: a write of the app in between wins); whether it was rewritten."""
        thread_id = row.thread_id if row.kind == "item" else None
        active = _Scope(row.owner, keys={row.owner: keys}, thread_id=thread_id)
        with scope(active):
            payload = reseal(self.codec, row.kind, row.payload)
        return await self._keys.replace_payload(row, payload)


def _same_id(found: str, wanted: str, kind: str) -> None:
    if found != wanted:
        raise DecryptionError(
            f"the stored {kind} {wanted!r} holds the sealed {kind} {found!r} (copied between "
            "rows): it is not returned",
            row_id=wanted,
        )
