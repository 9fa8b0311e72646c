"""An in-process `Store` that implements the whole ChatKit store contract."""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Generic, TypeVar

from chatkit.store import TContext
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata

from ..errors import EncryptedPayloadError
from . import _codec, _retention
from ._base import (
    OwnerScopedStore,
    attachment_not_found,
    cursor_not_found,
    item_not_found,
    thread_not_found,
)
from ._datakeys import PayloadKind, StoredPayload, WrappedDataKey, check_kind
from ._index import StoredAttachment, warn_skipped_encrypted
from ._rules import Order, OwnerResolver, build_page, check_id, check_limit, check_order, sort_key

_Key = tuple[int, int, str]
_M = TypeVar("_M", bound=_codec.HasId)


class _Collection:
    """Rows of one owner's threads, or of one thread's items, in keyset order.

    `payloads` gives O(1) lookup by id; `keys` holds `(sort_key, seq, id)` sorted, so a page is a
    bisect plus a slice: O(log n + k).
    """

    __slots__ = ("keys", "payloads", "positions")

    def __init__(self) -> None:
        self.payloads: dict[str, str] = {}
        self.positions: dict[str, _Key] = {}
        self.keys: list[_Key] = []

    def upsert(self, row_id: str, created_at: datetime, payload: str, seq: int) -> None:
        """Insert a row, or replace its payload keeping its original position."""
        if row_id not in self.positions:
            key = (sort_key(created_at), seq, row_id)
            self.positions[row_id] = key
            insort(self.keys, key)
        self.payloads[row_id] = payload

    def remove(self, row_id: str) -> None:
        key = self.positions.pop(row_id, None)
        if key is None:
            return
        del self.payloads[row_id]
        del self.keys[bisect_left(self.keys, key)]

    def page_ids(self, after: str | None, limit: int, order: Order) -> Iterator[str]:
        """Ids of up to `limit + 1` rows strictly after `after` in `order`; KeyError if unknown."""
        cursor = None if after is None else self.positions[after]
        if order == "asc":
            start = 0 if cursor is None else bisect_right(self.keys, cursor)
            window = self.keys[start : start + limit + 1]
        else:
            end = len(self.keys) if cursor is None else bisect_left(self.keys, cursor)
            window = self.keys[max(0, end - limit - 1) : end]
            window.reverse()
        return (key[2] for key in window)


class MemoryStore(OwnerScopedStore[TContext], Generic[TContext]):
    """A complete in-memory `Store`, for tests, demos and single-process apps.

    Everything is kept as text (JSON, or what `codec`, a `StoreCodec`, writes), so callers never
    share objects with the store: mutating what was saved or loaded cannot change stored state.
    Data is lost when the process exits.
    """

    def __init__(
        self, *, owner: OwnerResolver | None = None, codec: _codec.StoreCodec | None = None
    ) -> None:
        super().__init__(owner=owner)
        self._codec = _codec.check_codec(codec)
        self._seq = itertools.count(1)
        self._threads: dict[str, _Collection] = {}
        self._items: dict[tuple[str, str], _Collection] = {}
        self._attachments: dict[tuple[str, str], str] = {}
        self._attachment_saved_at: dict[tuple[str, str], datetime] = {}
        self._data_keys: dict[str, dict[int, WrappedDataKey]] = {}

    @property
    def codec(self) -> _codec.StoreCodec:
        """The codec every payload goes through (`codec=`)."""
        return self._codec

    def _checked(self, row_ids: Sequence[str], models: list[_M], kind: str) -> list[_M]:
        """`models`, after checking they have their rows' ids (codecs that bind rows)."""
        if _codec.verify_row_ids(self._codec):
            _codec.check_row_ids(row_ids, models, kind)
        return models

    # Threads

    async def load_thread(self, thread_id: str, context: TContext) -> ThreadMetadata:
        threads = self._threads.get(self.owner_key(context))
        payload = None if threads is None else threads.payloads.get(thread_id)
        if payload is None:
            raise thread_not_found(thread_id)
        return self._codec.decode_thread(payload)

    async def save_thread(self, thread: ThreadMetadata, context: TContext) -> None:
        owner = self.owner_key(context)
        check_id(thread.id, "thread id")
        payload = self._codec.encode_thread(thread)
        threads = self._threads.setdefault(owner, _Collection())
        threads.upsert(thread.id, thread.created_at, payload, next(self._seq))

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: TContext
    ) -> Page[ThreadMetadata]:
        owner = self.owner_key(context)
        limit, checked_order = check_limit(limit), check_order(order)
        threads = self._threads.get(owner) or _Collection()
        try:
            ids = list(threads.page_ids(after, limit, checked_order))
        except KeyError:
            raise cursor_not_found(str(after), "threads") from None
        return build_page(
            ids,
            limit,
            str,
            lambda kept: self._checked(
                kept, self._codec.decode_threads([threads.payloads[i] for i in kept]), "thread"
            ),
        )

    async def delete_thread(self, thread_id: str, context: TContext) -> None:
        owner = self.owner_key(context)
        threads = self._threads.get(owner)
        if threads is not None:
            threads.remove(thread_id)
        self._items.pop((owner, thread_id), None)

    # Items

    async def load_thread_items(
        self,
        thread_id: str,
        after: str | None,
        limit: int,
        order: str,
        context: TContext,
    ) -> Page[ThreadItem]:
        owner = self.owner_key(context)
        limit, checked_order = check_limit(limit), check_order(order)
        items = self._items.get((owner, thread_id)) or _Collection()
        try:
            ids = list(items.page_ids(after, limit, checked_order))
        except KeyError:
            raise cursor_not_found(str(after), f"thread {thread_id}") from None
        return build_page(
            ids,
            limit,
            str,
            lambda kept: self._checked(
                kept, self._codec.decode_items([items.payloads[i] for i in kept]), "item"
            ),
        )

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        self._upsert_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        self._upsert_item(thread_id, item, context)

    def _upsert_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        owner = self.owner_key(context)
        check_id(thread_id, "thread id")
        check_id(item.id, "item id")
        payload = self._codec.encode_item(item)
        threads = self._threads.get(owner)
        if threads is None or thread_id not in threads.payloads:
            raise thread_not_found(thread_id)  # never saved, or deleted
        items = self._items.setdefault((owner, thread_id), _Collection())
        items.upsert(item.id, item.created_at, payload, next(self._seq))

    async def load_item(self, thread_id: str, item_id: str, context: TContext) -> ThreadItem:
        items = self._items.get((self.owner_key(context), thread_id))
        payload = None if items is None else items.payloads.get(item_id)
        if payload is None:
            raise item_not_found(thread_id, item_id)
        return self._codec.decode_item(payload)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: TContext) -> None:
        items = self._items.get((self.owner_key(context), thread_id))
        if items is not None:
            items.remove(item_id)

    # Attachments

    async def save_attachment(self, attachment: Attachment, context: TContext) -> None:
        owner = self.owner_key(context)
        check_id(attachment.id, "attachment id")
        key = (owner, attachment.id)
        self._attachments[key] = self._codec.encode_attachment(attachment)
        self._attachment_saved_at.setdefault(key, datetime.now(timezone.utc))

    async def load_attachment(self, attachment_id: str, context: TContext) -> Attachment:
        payload = self._attachments.get((self.owner_key(context), attachment_id))
        if payload is None:
            raise attachment_not_found(attachment_id)
        return self._codec.decode_attachment(payload)

    async def delete_attachment(self, attachment_id: str, context: TContext) -> None:
        key = (self.owner_key(context), attachment_id)
        self._attachments.pop(key, None)
        self._attachment_saved_at.pop(key, None)

    # AttachmentIndex (chatkit_kit.stores.AttachmentIndex)

    async def list_thread_attachments(self, thread_id: str, context: TContext) -> list[Attachment]:
        owner = self.owner_key(context)
        found = []
        for (row_owner, row_id), payload in self._attachments.items():
            if row_owner == owner:
                attachment = self._checked(
                    (row_id,), [self._codec.decode_attachment(payload)], "attachment"
                )[0]
                if attachment.thread_id == thread_id:
                    found.append(attachment)
        return found

    async def list_unattached_attachments(
        self, saved_before: datetime, limit: int = 100
    ) -> list[StoredAttachment]:
        limit = check_limit(limit)
        cutoff = sort_key(saved_before)
        rows = sorted(
            (saved_at, key)
            for key, saved_at in self._attachment_saved_at.items()
            if sort_key(saved_at) < cutoff
        )
        found: list[StoredAttachment] = []
        skipped = 0
        for saved_at, (owner, attachment_id) in rows:
            try:
                attachment = self._codec.decode_attachment(
                    self._attachments[(owner, attachment_id)]
                )
            except EncryptedPayloadError:
                skipped += 1  # an EncryptedStore's row: this store cannot judge it
                continue
            if attachment.thread_id is None:
                self._checked((attachment_id,), [attachment], "attachment")
                found.append(StoredAttachment(owner, attachment, saved_at))
                if len(found) == limit:
                    break
        warn_skipped_encrypted(self, skipped)
        return found

    async def delete_orphan_attachment(self, owner: str, attachment_id: str) -> bool:
        key = (owner, attachment_id)
        payload = self._attachments.get(key)
        if payload is None or self._codec.decode_attachment(payload).thread_id is not None:
            return False
        del self._attachments[key]
        self._attachment_saved_at.pop(key, None)
        return True

    # Retention and erasure (chatkit_kit.stores.RetentionStore)

    async def erase_owner(
        self,
        owner: str,
        *,
        batch_size: int = _retention.DEFAULT_BATCH_SIZE,
        progress: _retention.Progress | None = None,
        attachments: _retention.AttachmentBytesEraser | None = None,
    ) -> int:
        """Delete every thread, item and attachment of the owner key `owner`; return the
        number of threads deleted. Attachment bytes go first, through the attachment backend
        passed as `attachments` (`AttachmentBytesEraser`)."""
        eraser = attachments
        _retention.check_owner(owner)
        batch_size = _retention.check_batch_size(batch_size)
        keys = [key for key in self._attachments if key[0] == owner]
        for start in range(0, len(keys), batch_size):
            batch = keys[start : start + batch_size]
            found = [
                self._codec.decode_attachment(self._attachments[k])
                for k in batch
                if k in self._attachments
            ]
            await _retention.erase_bytes(eraser, owner, found)
            for key in batch:
                self._attachments.pop(key, None)
                self._attachment_saved_at.pop(key, None)
        for key in [key for key in self._items if key[0] == owner]:
            del self._items[key]
        threads = self._threads.pop(owner, None)
        erased = 0 if threads is None else len(threads.payloads)
        if progress is not None and erased:
            progress(erased)
        return erased

    async def prune(
        self,
        older_than: timedelta,
        owner: str | None = None,
        *,
        batch_size: int = _retention.DEFAULT_BATCH_SIZE,
        dry_run: bool = False,
        progress: _retention.Progress | None = None,
        attachments: _retention.AttachmentBytesEraser | None = None,
    ) -> int:
        """Delete threads (with their items and attachments) whose latest activity, the newest
        `created_at` of the thread and its items, is older than `older_than`; return how many
        (with `dry_run=True`: how many would be deleted)."""
        eraser = attachments
        cutoff = _retention.cutoff_key(older_than)
        if owner is not None:
            _retention.check_owner(owner)
        _retention.check_batch_size(batch_size)
        stale: list[tuple[str, str]] = []
        owners = [owner] if owner is not None else list(self._threads)
        for row_owner in owners:
            threads = self._threads.get(row_owner)
            if threads is None:
                continue
            for thread_id, (thread_key, _, _) in threads.positions.items():
                items = self._items.get((row_owner, thread_id))
                newest = max([thread_key] + ([items.keys[-1][0]] if items and items.keys else []))
                if newest < cutoff:
                    stale.append((row_owner, thread_id))
        if dry_run:
            return len(stale)
        pruned = 0
        for row_owner, thread_id in stale:
            found = [
                self._codec.decode_attachment(payload)
                for (key_owner, _), payload in self._attachments.items()
                if key_owner == row_owner
            ]
            found = [a for a in found if a.thread_id == thread_id]
            await _retention.erase_bytes(eraser, row_owner, found)
            for attachment in found:
                self._attachments.pop((row_owner, attachment.id), None)
                self._attachment_saved_at.pop((row_owner, attachment.id), None)
            self._items.pop((row_owner, thread_id), None)
            self._threads[row_owner].remove(thread_id)
            pruned += 1
            if progress is not None and pruned % batch_size == 0:
                progress(pruned)
        if progress is not None and pruned % batch_size:
            progress(pruned)
        return pruned

    # Data keys and raw payloads (chatkit_kit.stores.DataKeyTable)

    async def load_data_keys(self, owner: str) -> list[WrappedDataKey]:
        keys = self._data_keys.get(_retention.check_owner(owner), {})
        return [keys[version] for version in sorted(keys)]

    async def add_data_key(self, key: WrappedDataKey) -> None:
        _retention.check_owner(key.owner)
        self._data_keys.setdefault(key.owner, {}).setdefault(key.version, key)

    async def rewrap_data_key(self, key: WrappedDataKey, previous: WrappedDataKey) -> None:
        keys = self._data_keys.get(previous.owner, {})
        if (key.owner, key.version) == (previous.owner, previous.version) and (
            keys.get(previous.version) == previous
        ):
            keys[key.version] = key

    async def delete_data_keys(self, owner: str, version: int | None = None) -> None:
        _retention.check_owner(owner)
        if version is None:
            self._data_keys.pop(owner, None)
            return
        keys = self._data_keys.get(owner, {})
        keys.pop(version, None)
        if not keys:
            self._data_keys.pop(owner, None)

    async def data_keys_not_under(self, kek_id: str, limit: int) -> list[WrappedDataKey]:
        limit = check_limit(limit)
        found = [
            key
            for owner in sorted(self._data_keys)
            for _, key in sorted(self._data_keys[owner].items())
            if key.kek_id != kek_id
        ]
        return found[:limit]

    def _payload_keys(self, kind: PayloadKind) -> Iterator[tuple[str, str, str]]:
        """Every row key of `kind`, (owner, thread id or "", id), in no particular order."""
        if kind == "thread":
            for owner, threads in self._threads.items():
                for thread_id in threads.payloads:
                    yield (owner, thread_id, thread_id)
        elif kind == "item":
            for (owner, thread_id), items in self._items.items():
                for item_id in items.payloads:
                    yield (owner, thread_id, item_id)
        else:
            for owner, row_id in self._attachments:
                yield (owner, "", row_id)

    def _stored(self, kind: PayloadKind, key: tuple[str, str, str]) -> StoredPayload:
        owner, thread_id, row_id = key
        if kind == "thread":
            return StoredPayload(kind, owner, row_id, row_id, self._threads[owner].payloads[row_id])
        if kind == "item":
            payload = self._items[(owner, thread_id)].payloads[row_id]
            return StoredPayload(kind, owner, thread_id, row_id, payload)
        return StoredPayload(kind, owner, None, row_id, self._attachments[(owner, row_id)])

    async def payload_rows(
        self, kind: PayloadKind, after: StoredPayload | None, limit: int
    ) -> list[StoredPayload]:
        """Rows in key order after `after`: one pass keeping the `limit` smallest keys (a heap
        of `limit`), no sort of every row per batch."""
        kind, limit = check_kind(kind), check_limit(limit)
        keys = self._payload_keys(kind)
        if after is not None:
            cursor = _payload_key(after)
            keys = (key for key in keys if key > cursor)
        return [self._stored(kind, key) for key in heapq.nsmallest(limit, keys)]

    async def replace_payload(self, row: StoredPayload, payload: str) -> bool:
        kind = check_kind(row.kind)
        if kind == "attachment":
            if self._attachments.get((row.owner, row.id)) != row.payload:
                return False
            self._attachments[(row.owner, row.id)] = payload
            return True
        collection = (
            self._threads.get(row.owner)
            if kind == "thread"
            else self._items.get((row.owner, str(row.thread_id)))
        )
        if collection is None or collection.payloads.get(row.id) != row.payload:
            return False
        collection.payloads[row.id] = payload
        return True


def _payload_key(row: StoredPayload) -> tuple[str, str, str]:
    if row.kind == "attachment":
        return (row.owner, "", row.id)
    return (row.owner, str(row.thread_id), row.id)
