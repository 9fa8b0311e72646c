"""Deliberately broken stores, each with one realistic bug, to prove the suite has teeth."""

from __future__ import annotations

import asyncio
import html
import sqlite3
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from chatkit.store import NotFoundError
from chatkit.types import (
    Attachment,
    Page,
    ThreadItem,
    ThreadMetadata,
)
from pydantic import TypeAdapter

from chatkit_kit.stores import MemoryStore
from chatkit_kit.stores._rules import Order, sort_key
from chatkit_kit.stores.memory import _Collection


class IgnoresOwner(MemoryStore[Any]):
    """Forgets to scope by user: everyone shares one owner."""

    def owner_key(self, context: Any) -> str:
        return "everyone"


class ThreadIdKeyed(MemoryStore[Any]):
    """Threads and items keyed on the thread id alone (`threads.id` is the primary key, the
    owner a plain column): a thread belongs to whoever saved it last, and its items to every
    owner. Attachments are scoped by owner, so only the thread and item facts are broken."""

    def __init__(self) -> None:
        super().__init__()
        self._saved_by: dict[str, str] = {}
        self._files: MemoryStore[Any] = MemoryStore()

    def owner_key(self, context: Any) -> str:
        return "everyone"

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        self._saved_by[thread.id] = context.user_id
        await super().save_thread(thread, context)

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        if self._saved_by.get(thread_id) != context.user_id:
            raise NotFoundError(f"Thread {thread_id} not found")
        return await super().load_thread(thread_id, context)

    async def save_attachment(self, attachment: Attachment, context: Any) -> None:
        await self._files.save_attachment(attachment, context)

    async def load_attachment(self, attachment_id: str, context: Any) -> Attachment:
        return await self._files.load_attachment(attachment_id, context)

    async def delete_attachment(self, attachment_id: str, context: Any) -> None:
        await self._files.delete_attachment(attachment_id, context)


class ThreadIdPrimaryKey(MemoryStore[Any]):
    """`threads.id` is the primary key, rows are read and written `WHERE owner = ?` (upstream's
    test SQLiteStore): another owner saving a used thread id hits the integrity error."""

    def __init__(self) -> None:
        super().__init__()
        self._owners: dict[str, str] = {}

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        if self._owners.setdefault(thread.id, context.user_id) != context.user_id:
            raise sqlite3.IntegrityError("UNIQUE constraint failed: threads.id")
        await super().save_thread(thread, context)

    async def delete_thread(self, thread_id: str, context: Any) -> None:
        await super().delete_thread(thread_id, context)
        if self._owners.get(thread_id) == context.user_id:
            del self._owners[thread_id]


class EscapesTitles(MemoryStore[Any]):
    """HTML-escapes thread titles on the way in (an XSS filter in the wrong place): `it's`
    comes back as `it&#x27;s`. A round-trip bug, not an owner-scoping one."""

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        if thread.title is not None:
            thread = thread.model_copy(update={"title": html.escape(thread.title)})
        await super().save_thread(thread, context)


class _BrokenPaging(MemoryStore[Any]):
    """Routes page reads through `page_ids` of a patched collection class."""

    collection_class: type[_Collection] = _Collection

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        items = self._items.get((self.owner_key(context), thread_id))
        if items is not None:
            items.__class__ = self.collection_class
        return await super().load_thread_items(thread_id, after, limit, order, context)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: Any
    ) -> Page[ThreadMetadata]:
        threads = self._threads.get(self.owner_key(context))
        if threads is not None:
            threads.__class__ = self.collection_class
        return await super().load_threads(limit, after, order, context)


class _InclusiveCursor(_Collection):
    __slots__ = ()

    def page_ids(self, after: str | None, limit: int, order: Order) -> Iterator[str]:
        if after is None or order == "desc":
            return super().page_ids(after, limit, order)
        start = bisect_left(self.keys, self.positions[after])  # includes the cursor row
        return (key[2] for key in self.keys[start : start + limit + 1])


class OffByOnePage(_BrokenPaging):
    """Ascending pages restart at the cursor row instead of after it."""

    collection_class = _InclusiveCursor


class HasMoreWithoutCursor(MemoryStore[Any]):
    """Reports has_more but forgets the cursor."""

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        page = await super().load_thread_items(thread_id, after, limit, order, context)
        page.after = None
        return page


class _DescIgnoresCursor(_Collection):
    __slots__ = ()

    def page_ids(self, after: str | None, limit: int, order: Order) -> Iterator[str]:
        if order == "desc":
            if after is not None and after not in self.positions:
                raise KeyError(after)
            return super().page_ids(None, limit, order)
        return super().page_ids(after, limit, order)


class DescIgnoresCursor(_BrokenPaging):
    """Newest-first pages always start at the newest row."""

    collection_class = _DescIgnoresCursor


class _TiesSkipped(_Collection):
    __slots__ = ()

    def page_ids(self, after: str | None, limit: int, order: Order) -> Iterator[str]:
        if after is None:
            return super().page_ids(after, limit, order)
        stamp = self.positions[after][0]
        # Compares only created_at, like upstream's SQLite mock: rows tied with the cursor vanish.
        if order == "asc":
            start = bisect_right(self.keys, (stamp, float("inf"), ""))
            window = self.keys[start : start + limit + 1]
        else:
            end = bisect_left(self.keys, (stamp, -1, ""))
            window = self.keys[max(0, end - limit - 1) : end][::-1]
        return (key[2] for key in window)


class TiesSkippedAtBoundary(_BrokenPaging):
    """Keyset on created_at alone: rows sharing the cursor's timestamp are skipped."""

    collection_class = _TiesSkipped


class SaveItemOnlyUpdates(MemoryStore[Any]):
    """save_item as a bare UPDATE: saving a new item silently does nothing."""

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        try:
            await self.load_item(thread_id, item.id, context)
        except Exception:
            return
        await super().save_item(thread_id, item, context)


class AddItemDuplicates(MemoryStore[Any]):
    """add_thread_item appends a second row when the id already exists."""

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        items = self._items.get((self.owner_key(context), thread_id))
        if items is not None and item.id in items.positions:
            insort(items.keys, (sort_key(item.created_at), next(self._seq), item.id))
        await super().add_thread_item(thread_id, item, context)


class DeleteThreadLeavesItems(MemoryStore[Any]):
    """delete_thread removes the thread row only."""

    async def delete_thread(self, thread_id: str, context: Any) -> None:
        threads = self._threads.get(self.owner_key(context))
        if threads is not None:
            threads.remove(thread_id)


class DropsTimeZone(MemoryStore[Any]):
    """Stores created_at in a timestamp column without time zone: aware values come back naive."""

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        item = await super().load_item(thread_id, item_id, context)
        item.created_at = item.created_at.replace(tzinfo=None)
        return item

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        thread = await super().load_thread(thread_id, context)
        thread.created_at = thread.created_at.replace(tzinfo=None)
        return thread


class AliasesStoredObjects(MemoryStore[Any]):
    """Keeps and returns the caller's objects instead of copies."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[tuple[str, str], Any] = {}

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        await super().save_thread(thread, context)
        self._live[(self.owner_key(context), thread.id)] = thread

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        await super().load_thread(thread_id, context)
        live: ThreadMetadata = self._live[(self.owner_key(context), thread_id)]
        return live


class _UnknownCursorRestarts(_Collection):
    __slots__ = ()

    def page_ids(self, after: str | None, limit: int, order: Order) -> Iterator[str]:
        return super().page_ids(after if after in self.positions else None, limit, order)


class UnknownCursorRestarts(_BrokenPaging):
    """An unknown cursor silently restarts at the first row (the quickstart store's bug)."""

    collection_class = _UnknownCursorRestarts


class KeepsThreadItems(MemoryStore[Any]):
    """Persists a Thread as given, items included."""

    def __init__(self) -> None:
        super().__init__()
        self._as_given: dict[tuple[str, str], ThreadMetadata] = {}

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        await super().save_thread(thread, context)
        self._as_given[(self.owner_key(context), thread.id)] = thread.model_copy(deep=True)

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        await super().load_thread(thread_id, context)
        # A copy every time: returning the stored object would be a second bug
        # (returned-copies), not the one this store is about.
        return self._as_given[(self.owner_key(context), thread_id)].model_copy(deep=True)


class _OrderById(_Collection):
    __slots__ = ()

    def upsert(self, row_id: str, created_at: Any, payload: str, seq: int) -> None:
        super().upsert(row_id, created_at, payload, 0)
        self.keys.sort(key=lambda key: key[2])


class OrdersById(_BrokenPaging):
    """Sorts items by id instead of created_at."""

    collection_class = _OrderById

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        await super().add_thread_item(thread_id, item, context)
        items = self._items[(self.owner_key(context), thread_id)]
        items.keys.sort(key=lambda key: key[2])
        items.positions = {key[2]: key for key in items.keys}


class UnknownThreadRaises(MemoryStore[Any]):
    """Raises for items of an unknown (or foreign) thread instead of returning an empty page."""

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        await self.load_thread(thread_id, context)
        return await super().load_thread_items(thread_id, after, limit, order, context)


class AttachmentsNotScoped(MemoryStore[Any]):
    """load_attachment ignores the owner (the upstream mock's TODO)."""

    async def load_attachment(self, attachment_id: str, context: Any) -> Attachment:
        for (_, stored_id), payload in self._attachments.items():
            if stored_id == attachment_id:
                from chatkit_kit.stores import _codec

                return _codec.decode_attachment(payload)
        return await super().load_attachment(attachment_id, context)


class GlobalItemIds(MemoryStore[Any]):
    """Item ids are a global primary key: reusing one in another thread is an integrity error."""

    def __init__(self) -> None:
        super().__init__()
        self._homes: dict[str, tuple[str, str]] = {}

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        home = (self.owner_key(context), thread_id)
        if self._homes.setdefault(item.id, home) != home:
            raise sqlite3.IntegrityError("UNIQUE constraint failed: items.id")
        await super().add_thread_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        await self.add_thread_item(thread_id, item, context)


class UpsertMovesItem(MemoryStore[Any]):
    """save_item as `UPDATE items SET thread_id = ... WHERE owner = ? AND id = ?`: replacing an
    item takes it out of the thread it was in (add_thread_item is scoped correctly)."""

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        for (owner, other_thread), rows in list(self._items.items()):
            if owner == self.owner_key(context) and other_thread != thread_id:
                if item.id in rows.positions:
                    rows.remove(item.id)
        await super().save_item(thread_id, item, context)


class PhantomThreadOnRead(MemoryStore[Any]):
    """`get_or_create` on read: listing items of an unknown thread creates that thread."""

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        try:
            await self.load_thread(thread_id, context)
        except NotFoundError:
            await self.save_thread(ThreadMetadata(id=thread_id, created_at=datetime.now()), context)
        return await super().load_thread_items(thread_id, after, limit, order, context)


class LosesJsonStrings(MemoryStore[Any]):
    """Parses JSON strings that look like numbers: the string "1e3" comes back as 1000.0."""

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        thread = await super().load_thread(thread_id, context)
        thread.metadata = _parse_numeric_strings(thread.metadata)
        return thread


def _parse_numeric_strings(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {key: _parse_numeric_strings(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_parse_numeric_strings(inner) for inner in value]
    return value


class LostUpdates(MemoryStore[Any]):
    """Read-modify-write of a thread's item list across an await: concurrent adds lose rows."""

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        key = (self.owner_key(context), thread_id)
        snapshot = _copy(self._items.get(key))
        await asyncio.sleep(0)  # e.g. awaiting the database between the read and the write
        self._items[key] = snapshot
        await super().add_thread_item(thread_id, item, context)


def _copy(rows: _Collection | None) -> _Collection:
    copy = _Collection()
    if rows is not None:
        copy.keys = list(rows.keys)
        copy.payloads = dict(rows.payloads)
        copy.positions = dict(rows.positions)
    return copy


class StaleReadsAcrossRequests(MemoryStore[Any]):
    """A process-wide read cache that now and then serves the previous request's thread."""

    def __init__(self) -> None:
        super().__init__()
        self._reads = 0
        self._last: ThreadMetadata | None = None

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        self._reads += 1
        fresh = await super().load_thread(thread_id, context)
        stale, self._last = self._last, fresh
        if self._reads % 7 == 0 and stale is not None:
            return stale
        return fresh


class FlattensTemplateWidgets(MemoryStore[Any]):
    """Validates stored items with a plain TypeAdapter(ThreadItem): a template-built
    DynamicWidgetRoot comes back as a strict Card, its unknown properties dropped."""

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        item = await super().load_item(thread_id, item_id, context)
        return _PLAIN_ITEM.validate_json(_PLAIN_ITEM.dump_json(item))

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        page = await super().load_thread_items(thread_id, after, limit, order, context)
        page.data = [_PLAIN_ITEM.validate_json(_PLAIN_ITEM.dump_json(i)) for i in page.data]
        return page


_PLAIN_ITEM: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)


class ForeignCursorAccepted(MemoryStore[Any]):
    """Resolves `after` among all the owner's items (`WHERE owner = ? AND id = ?`, the thread
    forgotten): another thread's item is accepted as a cursor of this one."""

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        owner = self.owner_key(context)
        rows = self._items.get((owner, thread_id))
        if after is not None and (rows is None or after not in rows.positions):
            for (other_owner, _), other in self._items.items():
                if other_owner == owner and after in other.positions and rows is not None:
                    key = other.positions[after]
                    ordered = sorted(rows.keys, reverse=order == "desc")
                    later = [k for k in ordered if (k > key if order == "asc" else k < key)]
                    window = later[: limit + 1]
                    data = [await self.load_item(thread_id, k[2], context) for k in window[:limit]]
                    more = len(window) > limit
                    return Page(data=data, has_more=more, after=data[-1].id if more else None)
        return await super().load_thread_items(thread_id, after, limit, order, context)


BROKEN_STORES: dict[type[MemoryStore[Any]], str] = {
    IgnoresOwner: "owner-isolation",
    OffByOnePage: "exclusive-cursor",
    HasMoreWithoutCursor: "has-more-needs-cursor",
    DescIgnoresCursor: "exclusive-cursor",
    TiesSkippedAtBoundary: "ties-stable-order",
    SaveItemOnlyUpdates: "save-item-upsert",
    AddItemDuplicates: "add-item-idempotent",
    DeleteThreadLeavesItems: "delete-thread-cascades",
    DropsTimeZone: "datetimes-exact",
    AliasesStoredObjects: "returned-copies",
    UnknownCursorRestarts: "unknown-cursor",
    KeepsThreadItems: "thread-metadata-only",
    OrdersById: "items-ordered-by-created-at",
    UnknownThreadRaises: "unknown-thread-empty-page",
    AttachmentsNotScoped: "attachment-owner-isolation",
    GlobalItemIds: "same-id-two-rows",
    UpsertMovesItem: "upsert-never-moves",
    PhantomThreadOnRead: "unknown-thread-creates-nothing",
    LosesJsonStrings: "json-exact",
    LostUpdates: "concurrent-adds-exactly-once",
    StaleReadsAcrossRequests: "thread-round-trip",
    FlattensTemplateWidgets: "item-round-trip",
    ForeignCursorAccepted: "unknown-cursor",
    ThreadIdKeyed: "owner-isolation",
    ThreadIdPrimaryKey: "owner-isolation",
    EscapesTitles: "thread-round-trip",
}
"""Each broken store and the rule that must catch it (run alone). `does-not-block-loop` has
its own broken store, `SyncSQLiteStore` in sync_sqlite_store.py, which needs a file."""


class LeaksConnections(MemoryStore[Any]):
    """Opens a database connection per write (a pool without a limit) and close() forgets
    them: every reopened store leaves its connections open."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.connections: list[sqlite3.Connection] = []

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        self.connections.append(sqlite3.connect(self.path))
        await super().save_thread(thread, context)

    async def close(self) -> None:
        return None  # the connections stay open
