"""A store behaving like upstream openai-chatkit's own test `SQLiteStore`.

Upstream's server tests run against a small synchronous `sqlite3` store
(`tests/helpers/mock_store.py` in the openai/chatkit-python repository). This module is written
from its known behaviours, not copied from it, so the suite's verdict on such a store is pinned
by a test (test_upstream_like_store.py):

- `threads.id`, `items.id` and `files.id` are each the table's primary key; the owner
  (`user_id`) is a plain column that reads and deletes filter on. Another owner saving a used
  thread id, or any thread adding a used item id, hits `sqlite3.IntegrityError`;
- `save_thread` deletes the owner's row and inserts it again; `add_thread_item` is a plain
  `INSERT` (adding an item twice is an integrity error); `save_item` is a bare `UPDATE` (saving
  a new item stores nothing); `save_attachment` is `INSERT OR REPLACE` on the id alone;
- `load_attachment` reads by id alone (upstream's "TODO: consider checking user_id");
- `created_at` is stored as `datetime.isoformat()` text and pages are ordered and cut on it
  alone (`created_at > ?`), so rows sharing the cursor's timestamp are skipped; a cursor is
  looked up among all of the owner's items (`WHERE id = ? AND user_id = ?`, the thread
  forgotten); an unknown item cursor raises `NotFoundError`, an unknown thread cursor
  `ValueError`;
- rows are JSON documents of pydantic wrapper models (`{"thread": {...}}`), so a saved `Thread`
  keeps only its `ThreadMetadata` fields;
- every call opens its own `sqlite3` connection and runs on the event loop thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from pydantic import BaseModel

_TABLES = (
    "CREATE TABLE IF NOT EXISTS threads (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
    "created_at TEXT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, "
    "user_id TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
    "data TEXT NOT NULL)",
)


class _ThreadRow(BaseModel):
    thread: ThreadMetadata


class _ItemRow(BaseModel):
    item: ThreadItem


class _FileRow(BaseModel):
    attachment: Attachment


class UpstreamLikeSQLiteStore(Store[Any]):
    """Upstream's test store, behaviour for behaviour (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with self._db() as db:
            for statement in _TABLES:
                db.execute(statement)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A new connection per call, committed at the end (and closed, unlike upstream's
        `with sqlite3.connect(...)`, which leaves closing to the garbage collector)."""
        connection = sqlite3.connect(self.path)
        try:
            with connection:
                yield connection
        finally:
            connection.close()

    # Threads

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        with self._db() as db:
            row = db.execute(
                "SELECT data FROM threads WHERE id = ? AND user_id = ?",
                (thread_id, context.user_id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Thread {thread_id} not found")
        return _ThreadRow.model_validate_json(row[0]).thread

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        data = _ThreadRow(thread=thread).model_dump_json()
        with self._db() as db:
            db.execute(
                "DELETE FROM threads WHERE id = ? AND user_id = ?", (thread.id, context.user_id)
            )
            db.execute(
                "INSERT INTO threads (id, user_id, created_at, data) VALUES (?, ?, ?, ?)",
                (thread.id, context.user_id, thread.created_at.isoformat(), data),
            )

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: Any
    ) -> Page[ThreadMetadata]:
        with self._db() as db:
            # (Upstream's store raises ValueError for an unknown thread cursor.)
            since = self._cursor_time(db, "threads", after, context, ValueError("Thread"))
            rows = self._page(db, "threads", "user_id = ?", [context.user_id], since, limit, order)
        threads = [_ThreadRow.model_validate_json(data).thread for data in rows]
        return _cut(threads, limit)

    async def delete_thread(self, thread_id: str, context: Any) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM threads WHERE id = ? AND user_id = ?", (thread_id, context.user_id)
            )
            db.execute(
                "DELETE FROM items WHERE thread_id = ? AND user_id = ?",
                (thread_id, context.user_id),
            )

    # Items

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        with self._db() as db:
            since = self._cursor_time(db, "items", after, context, NotFoundError("Item"))
            rows = self._page(
                db,
                "items",
                "thread_id = ? AND user_id = ?",
                [thread_id, context.user_id],
                since,
                limit,
                order,
            )
        items = [_ItemRow.model_validate_json(data).item for data in rows]
        return _cut(items, limit)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO items (id, thread_id, user_id, created_at, data) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    item.id,
                    thread_id,
                    context.user_id,
                    item.created_at.isoformat(),
                    _ItemRow(item=item).model_dump_json(),
                ),
            )

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE items SET data = ? WHERE id = ? AND thread_id = ? AND user_id = ?",
                (_ItemRow(item=item).model_dump_json(), item.id, thread_id, context.user_id),
            )

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        with self._db() as db:
            row = db.execute(
                "SELECT data FROM items WHERE id = ? AND thread_id = ? AND user_id = ?",
                (item_id, thread_id, context.user_id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Item {item_id} not found in thread {thread_id}")
        return _ItemRow.model_validate_json(row[0]).item

    async def delete_thread_item(self, thread_id: str, item_id: str, context: Any) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM items WHERE id = ? AND thread_id = ? AND user_id = ?",
                (item_id, thread_id, context.user_id),
            )

    # Attachments

    async def save_attachment(self, attachment: Attachment, context: Any) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO files (id, user_id, data) VALUES (?, ?, ?)",
                (attachment.id, context.user_id, _FileRow(attachment=attachment).model_dump_json()),
            )

    async def load_attachment(self, attachment_id: str, context: Any) -> Attachment:
        with self._db() as db:
            row = db.execute("SELECT data FROM files WHERE id = ?", (attachment_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"File {attachment_id} not found")
        return _FileRow.model_validate_json(row[0]).attachment

    async def delete_attachment(self, attachment_id: str, context: Any) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM files WHERE id = ? AND user_id = ?", (attachment_id, context.user_id)
            )

    # Paging

    @staticmethod
    def _cursor_time(
        db: sqlite3.Connection, table: str, after: str | None, context: Any, missing: Exception
    ) -> str | None:
        """The `created_at` of the cursor row `after` (by id and user alone), or None."""
        if not after:
            return None
        found = db.execute(
            f"SELECT created_at FROM {table} WHERE id = ? AND user_id = ?",
            (after, context.user_id),
        ).fetchone()
        if found is None:
            raise type(missing)(f"{missing} {after} not found")
        created: str = found[0]
        return created

    @staticmethod
    def _page(
        db: sqlite3.Connection,
        table: str,
        where: str,
        params: list[Any],
        since: str | None,
        limit: int,
        order: str,
    ) -> list[str]:
        """Rows' JSON, ordered and cut on the created_at text alone."""
        query = f"SELECT data FROM {table} WHERE {where}"  # table and filter are fixed names
        if since:
            query += " AND created_at > ?" if order == "asc" else " AND created_at < ?"
            params = [*params, since]
        query += f" ORDER BY created_at {'ASC' if order == 'asc' else 'DESC'} LIMIT ?"
        return [row[0] for row in db.execute(query, [*params, limit + 1])]


def _cut(rows: Sequence[Any], limit: int) -> Page[Any]:
    """The first `limit` rows of `limit + 1`; `after` is the last one's id when there is more."""
    more = len(rows) > limit
    data = list(rows[:limit])
    return Page(data=data, has_more=more, after=data[-1].id if more else None)
