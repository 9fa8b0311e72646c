"""Deliberately broken stores, each with one realistic bug, to prove the suite has teeth."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import Any

from chatkit.types import Attachment, Page, Thread, ThreadItem, ThreadMetadata

from chatkit_kit.stores import MemoryStore
from chatkit_kit.stores._rules import Order, sort_key
from chatkit_kit.stores.memory import _Collection


class IgnoresOwner(MemoryStore[Any]):
    """Forgets to scope by user: everyone shares one owner."""

    def owner_key(self, context: Any) -> str:
        return "everyone"


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
        thread = self._as_given[(self.owner_key(context), thread_id)]
        return thread.model_copy(deep=True) if isinstance(thread, Thread) else thread


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


BROKEN_STORES: dict[type[MemoryStore[Any]], str] = {
    IgnoresOwner: "owner-isolation",
    OffByOnePage: "exclusive-cursor",
    HasMoreWithoutCursor: "has-more-needs-cursor",
    DescIgnoresCursor: "exclusive-cursor",
    TiesSkippedAtBoundary: "ties-insertion-order",
    SaveItemOnlyUpdates: "save-item-upsert",
    AddItemDuplicates: "add-item-idempotent",
    DeleteThreadLeavesItems: "delete-thread-cascades",
    DropsTimeZone: "datetimes-exact",
    AliasesStoredObjects: "returned-copies",
    UnknownCursorRestarts: "unknown-cursor",
    KeepsThreadItems: "thread-metadata-only",
    OrdersById: "items-ordered-by-created-at",
    UnknownThreadRaises: "unknown-thread-empty-page",
    AttachmentsNotScoped: "owner-isolation",
}
"""Each broken store and the rule whose test must catch it."""
