"""Correct stores that make a legitimate design choice chatkit-kit's stores do not.

Each must pass the contract tier: a suite that fails them is unfair. `SimpleStore` is a small
dict-based store with no id policy; each variant changes one choice.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from datetime import timezone
from typing import Any, ClassVar, TypeVar

from chatkit.store import NotFoundError, Store
from chatkit.types import (
    Attachment,
    ClientToolCallItem,
    HiddenContextItem,
    Page,
    ThreadItem,
    ThreadMetadata,
)

from chatkit_kit.stores import _codec
from chatkit_kit.stores._rules import sort_key

T = TypeVar("T")
_Rows = dict[str, tuple[tuple[int, int], str]]


class SimpleStore(Store[Any]):
    """Owner-scoped dicts, keyset order on (created_at, insertion), NotFoundError for unknown
    cursors, ValueError for bad order/limit, no limit on ids (no id policy); items written into
    a thread that has no row are kept (and show again if that thread id is saved later)."""

    resort_on_upsert = False
    unknown_cursor_gives_empty_page = False
    lenient_order_and_limit = False

    def __init__(self) -> None:
        self.threads: dict[str, _Rows] = {}
        self.items: dict[tuple[str, str], _Rows] = {}
        self.attachments: dict[tuple[str, str], str] = {}
        self.seq = itertools.count()

    def owner(self, context: Any) -> str:
        return str(context.user_id)

    def _upsert(self, rows: _Rows, row_id: str, created_at: Any, payload: str) -> None:
        key = (sort_key(created_at), next(self.seq))
        old = rows.get(row_id)
        if old is not None and not self.resort_on_upsert:
            key = old[0]
        rows[row_id] = (key, payload)

    def _page(
        self, rows: _Rows, after: str | None, limit: int, order: str, decode: Callable[[str], T]
    ) -> Page[T]:
        if self.lenient_order_and_limit:
            order = "desc" if str(order).lower() == "desc" else "asc"
            limit = limit if limit > 0 else 20
        elif order not in ("asc", "desc") or limit < 1:
            raise ValueError(f"bad order {order!r} or limit {limit!r}")
        ordered = sorted(rows.items(), key=lambda pair: pair[1][0], reverse=order == "desc")
        ids = [row_id for row_id, _ in ordered]
        start = 0
        if after is not None:
            if after not in rows:
                if self.unknown_cursor_gives_empty_page:
                    return Page()
                raise NotFoundError(f"Cursor {after} not found")
            start = ids.index(after) + 1
        window = ordered[start : start + limit]
        has_more = start + limit < len(ordered)
        return Page(
            data=[decode(payload) for _, (_, payload) in window],
            has_more=has_more,
            after=window[-1][0] if has_more else None,
        )

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        row = self.threads.get(self.owner(context), {}).get(thread_id)
        if row is None:
            raise NotFoundError(f"Thread {thread_id} not found")
        return _codec.decode_thread(row[1])

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        rows = self.threads.setdefault(self.owner(context), {})
        self._upsert(rows, thread.id, thread.created_at, _codec.encode_thread(thread))

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: Any
    ) -> Page[ThreadMetadata]:
        rows = self.threads.get(self.owner(context), {})
        return self._page(rows, after, limit, order, _codec.decode_thread)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        rows = self.items.get((self.owner(context), thread_id), {})
        return self._page(rows, after, limit, order, _codec.decode_item)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        rows = self.items.setdefault((self.owner(context), thread_id), {})
        self._upsert(rows, item.id, item.created_at, _codec.encode_item(item))

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        await self.add_thread_item(thread_id, item, context)

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        row = self.items.get((self.owner(context), thread_id), {}).get(item_id)
        if row is None:
            raise NotFoundError(f"Item {item_id} not found in thread {thread_id}")
        return _codec.decode_item(row[1])

    async def delete_thread(self, thread_id: str, context: Any) -> None:
        self.threads.get(self.owner(context), {}).pop(thread_id, None)
        self.items.pop((self.owner(context), thread_id), None)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: Any) -> None:
        self.items.get((self.owner(context), thread_id), {}).pop(item_id, None)

    async def save_attachment(self, attachment: Attachment, context: Any) -> None:
        self.attachments[(self.owner(context), attachment.id)] = _codec.encode_attachment(
            attachment
        )

    async def load_attachment(self, attachment_id: str, context: Any) -> Attachment:
        payload = self.attachments.get((self.owner(context), attachment_id))
        if payload is None:
            raise NotFoundError(f"Attachment {attachment_id} not found")
        return _codec.decode_attachment(payload)

    async def delete_attachment(self, attachment_id: str, context: Any) -> None:
        self.attachments.pop((self.owner(context), attachment_id), None)


class ForeignKeyStore(SimpleStore):
    """Items reference their thread: writing into a thread never saved is an integrity error."""

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        if thread_id not in self.threads.get(self.owner(context), {}):
            raise sqlite3.IntegrityError("FOREIGN KEY constraint failed")
        await super().add_thread_item(thread_id, item, context)


class ThreadRequiredStore(SimpleStore):
    """chatkit-kit's own choice: an item write into a thread with no row raises NotFoundError."""

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        if thread_id not in self.threads.get(self.owner(context), {}):
            raise NotFoundError(f"Thread {thread_id} not found")
        await super().add_thread_item(thread_id, item, context)


class ThreadIdCheckStore(SimpleStore):
    """Refuses an item whose thread_id is not the thread it is written to."""

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        if item.thread_id != thread_id:
            raise ValueError(f"item {item.id} belongs to {item.thread_id}, not {thread_id}")
        await super().add_thread_item(thread_id, item, context)


class NoAttachmentsStore(SimpleStore):
    """No attachment support, like upstream's quickstart store."""

    async def save_attachment(self, attachment: Attachment, context: Any) -> None:
        raise NotImplementedError

    async def load_attachment(self, attachment_id: str, context: Any) -> Attachment:
        raise NotImplementedError

    async def delete_attachment(self, attachment_id: str, context: Any) -> None:
        raise NotImplementedError


class ResortOnUpsertStore(SimpleStore):
    """An upserted row moves to where its new created_at sorts."""

    resort_on_upsert = True


class LenientOrderStore(SimpleStore):
    """Reads any order case-insensitively (else ascending) and a limit below 1 as 20."""

    lenient_order_and_limit = True


class EmptyPageForUnknownCursorStore(SimpleStore):
    """An unknown cursor gives an empty page instead of NotFoundError."""

    unknown_cursor_gives_empty_page = True


class AfterOnLastPageStore(SimpleStore):
    """Sets `after` to the last row's id on every page, the last one included (class 1)."""

    def _page(
        self, rows: _Rows, after: str | None, limit: int, order: str, decode: Callable[[str], T]
    ) -> Page[T]:
        page = super()._page(rows, after, limit, order, decode)
        if page.data and not page.has_more:
            page.after = getattr(page.data[-1], "id", None)
        return page


class AwareThreadTimesStore(SimpleStore):
    """A timestamptz column: a thread's naive created_at comes back as aware UTC (class 2)."""

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        return _aware(await super().load_thread(thread_id, context))

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: Any
    ) -> Page[ThreadMetadata]:
        page = await super().load_threads(limit, after, order, context)
        page.data = [_aware(row) for row in page.data]
        return page


def _aware(thread: ThreadMetadata) -> ThreadMetadata:
    if thread.created_at.tzinfo is None:
        thread.created_at = thread.created_at.replace(tzinfo=timezone.utc)
    return thread


class KeepsThreadCreatedAtStore(SimpleStore):
    """An upsert of a thread keeps its first created_at (class 3): the server never changes it."""

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        old = self.threads.get(self.owner(context), {}).get(thread.id)
        if old is not None:
            kept = _codec.decode_thread(old[1]).created_at
            thread = thread.model_copy(update={"created_at": kept})
        await super().save_thread(thread, context)


class InsertionOrderStore(SimpleStore):
    """Items listed in insertion order, not by created_at (class 4): the server adds them in
    time order."""

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        rows = self.items.setdefault((self.owner(context), thread_id), {})
        old = rows.get(item.id)
        key = old[0] if old is not None else (0, next(self.seq))
        rows[item.id] = (key, _codec.encode_item(item))


def _jsonb(value: Any) -> Any:
    """What PostgreSQL's jsonb does to numbers: integral floats become ints, -0.0 becomes 0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _jsonb(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_jsonb(inner) for inner in value]
    return value


class JsonbNumbersStore(SimpleStore):
    """Stores JSON as jsonb (class 5): 1.06e19 comes back as an int, -0.0 as 0; the client
    reads the same numbers."""

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        thread = thread.model_copy(update={"metadata": _jsonb(thread.metadata)})
        await super().save_thread(thread, context)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        fields = ("content", "arguments", "output")
        changes = {
            name: _jsonb(getattr(item, name))
            for name in fields
            if isinstance(item, (HiddenContextItem, ClientToolCallItem)) and hasattr(item, name)
        }
        await super().add_thread_item(thread_id, item.model_copy(update=changes), context)


class ComparesDatetimesStore(SimpleStore):
    """Sorts by the datetime objects themselves (class 6): naive and aware values side by side
    would raise TypeError, and the server only ever creates naive ones."""

    def _upsert(self, rows: _Rows, row_id: str, created_at: Any, payload: str) -> None:
        old = rows.get(row_id)
        key: Any = (created_at, next(self.seq))
        if old is not None and not self.resort_on_upsert:
            key = old[0]
        rows[row_id] = (key, payload)


class ProjectionStore(SimpleStore):
    """Items are written by another runtime (class 7, like adk-chatkit's ADKStore):
    add_thread_item and save_item store nothing. Declared: items_written_elsewhere = True."""

    conformance_options: ClassVar[dict[str, Any]] = {"items_written_elsewhere": True}

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        return None

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        return None


VARIANT_STORES: dict[type[SimpleStore], str] = {
    SimpleStore: "no id policy (NUL and very long ids stored)",
    ForeignKeyStore: "items need a saved thread (foreign key)",
    ThreadRequiredStore: "items need a saved thread (NotFoundError)",
    ThreadIdCheckStore: "item.thread_id must equal the thread written to",
    NoAttachmentsStore: "no attachment support (NotImplementedError)",
    ResortOnUpsertStore: "an upsert re-sorts by the new created_at",
    LenientOrderStore: "any order/limit accepted",
    EmptyPageForUnknownCursorStore: "unknown cursor gives an empty page",
    AfterOnLastPageStore: "`after` set on the last page (class 1)",
    AwareThreadTimesStore: "a thread's naive created_at comes back aware UTC (class 2)",
    KeepsThreadCreatedAtStore: "a thread's created_at kept on upsert (class 3)",
    InsertionOrderStore: "items in insertion order (class 4)",
    JsonbNumbersStore: "jsonb number normalisation (class 5)",
    ComparesDatetimesStore: "compares datetime objects, naive ones only seen (class 6)",
    ProjectionStore: "items written elsewhere, declared (class 7)",
}
"""Each variant store and the legitimate choice it makes."""
