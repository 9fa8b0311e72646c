"""A store that does blocking sqlite3 I/O on the event loop, like upstream's test store.

It is otherwise a fair store (owner-scoped keys, keyset pages on (created_at, seq), upserts that
keep their place), so the only rule it breaks is `does-not-block-loop`: every call runs its
query synchronously on the loop, and on a thread of many items (no index on the thread's rows,
as in the upstream mock) a read scans and sorts the whole table.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter

from chatkit_kit.stores import _codec, default_owner
from chatkit_kit.stores._rules import sort_key

_ATTACHMENT = TypeAdapter(Attachment)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (owner TEXT, id TEXT, ts INTEGER, seq INTEGER, data TEXT,
    PRIMARY KEY (owner, id));
CREATE TABLE IF NOT EXISTS items (owner TEXT, thread_id TEXT, id TEXT, ts INTEGER, seq INTEGER,
    data TEXT);
CREATE TABLE IF NOT EXISTS attachments (owner TEXT, id TEXT, data TEXT, PRIMARY KEY (owner, id));
"""


class SyncSQLiteStore(Store[Any]):
    """Blocking sqlite3 calls inside async methods."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path))
        self.db.execute("PRAGMA synchronous = OFF")  # fast writes: only the reads are slow
        self.db.executescript(_SCHEMA)
        self.seq = 0

    def _connect(self) -> sqlite3.Connection:
        return self.db  # used as `with`: one transaction per call

    def _next_seq(self, db: sqlite3.Connection) -> int:
        self.seq += 1
        return self.seq

    def close(self) -> None:
        self.db.close()

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        with self._connect() as db:
            row = db.execute(
                "SELECT data FROM threads WHERE owner = ? AND id = ?",
                (default_owner(context), thread_id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Thread {thread_id} not found")
        return ThreadMetadata.model_validate_json(row[0])

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        meta = ThreadMetadata(**{k: getattr(thread, k) for k in ThreadMetadata.model_fields})
        with self._connect() as db:
            owner = default_owner(context)
            updated = db.execute(
                "UPDATE threads SET data = ? WHERE owner = ? AND id = ?",
                (meta.model_dump_json(), owner, thread.id),
            ).rowcount
            if not updated:
                db.execute(
                    "INSERT INTO threads VALUES (?, ?, ?, ?, ?)",
                    (
                        owner,
                        thread.id,
                        sort_key(thread.created_at),
                        self._next_seq(db),
                        meta.model_dump_json(),
                    ),
                )

    def _page(
        self,
        table: str,
        where: str,
        args: tuple[Any, ...],
        after: str | None,
        limit: int,
        order: str,
    ) -> tuple[list[str], bool, str | None]:
        direction = "ASC" if order == "asc" else "DESC"
        with self._connect() as db:
            cursor_clause = ""
            cursor_args: tuple[Any, ...] = ()
            if after is not None:
                found = db.execute(
                    f"SELECT ts, seq FROM {table} WHERE {where} AND id = ?", (*args, after)
                ).fetchone()
                if found is None:
                    raise NotFoundError(f"Cursor {after} not found")
                op = ">" if order == "asc" else "<"
                cursor_clause = f" AND (ts, seq) {op} (?, ?)"
                cursor_args = tuple(found)
            rows = db.execute(
                f"SELECT id, data FROM {table} WHERE {where}{cursor_clause} "
                f"ORDER BY ts {direction}, seq {direction} LIMIT ?",
                (*args, *cursor_args, limit + 1),
            ).fetchall()
        has_more = len(rows) > limit
        rows = rows[:limit]
        return [r[1] for r in rows], has_more, rows[-1][0] if has_more else None

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        data, has_more, cursor = self._page(
            "items",
            "owner = ? AND thread_id = ?",
            (default_owner(context), thread_id),
            after,
            limit,
            order,
        )
        return Page(data=[_codec.decode_item(d) for d in data], has_more=has_more, after=cursor)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: Any
    ) -> Page[ThreadMetadata]:
        data, has_more, cursor = self._page(
            "threads", "owner = ?", (default_owner(context),), after, limit, order
        )
        return Page(
            data=[ThreadMetadata.model_validate_json(d) for d in data],
            has_more=has_more,
            after=cursor,
        )

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        await self.save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        owner = default_owner(context)
        data = _codec.encode_item(item)
        with self._connect() as db:
            updated = db.execute(
                "UPDATE items SET data = ? WHERE owner = ? AND thread_id = ? AND id = ?",
                (data, owner, thread_id, item.id),
            ).rowcount
            if not updated:
                db.execute(
                    "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        owner,
                        thread_id,
                        item.id,
                        sort_key(item.created_at),
                        self._next_seq(db),
                        data,
                    ),
                )

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        with self._connect() as db:
            row = db.execute(
                "SELECT data FROM items WHERE owner = ? AND thread_id = ? AND id = ?",
                (default_owner(context), thread_id, item_id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Item {item_id} not found in thread {thread_id}")
        return _codec.decode_item(row[0])

    async def delete_thread(self, thread_id: str, context: Any) -> None:
        owner = default_owner(context)
        with self._connect() as db:
            db.execute("DELETE FROM threads WHERE owner = ? AND id = ?", (owner, thread_id))
            db.execute("DELETE FROM items WHERE owner = ? AND thread_id = ?", (owner, thread_id))

    async def delete_thread_item(self, thread_id: str, item_id: str, context: Any) -> None:
        with self._connect() as db:
            db.execute(
                "DELETE FROM items WHERE owner = ? AND thread_id = ? AND id = ?",
                (default_owner(context), thread_id, item_id),
            )

    async def save_attachment(self, attachment: Attachment, context: Any) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO attachments VALUES (?, ?, ?)",
                (default_owner(context), attachment.id, _ATTACHMENT.dump_json(attachment).decode()),
            )

    async def load_attachment(self, attachment_id: str, context: Any) -> Attachment:
        with self._connect() as db:
            row = db.execute(
                "SELECT data FROM attachments WHERE owner = ? AND id = ?",
                (default_owner(context), attachment_id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Attachment {attachment_id} not found")
        return _ATTACHMENT.validate_json(row[0])

    async def delete_attachment(self, attachment_id: str, context: Any) -> None:
        with self._connect() as db:
            db.execute(
                "DELETE FROM attachments WHERE owner = ? AND id = ?",
                (default_owner(context), attachment_id),
            )


class InsertOnlySyncSQLiteStore(SyncSQLiteStore):
    """Also not idempotent: re-adding an item raises sqlite3.IntegrityError (upstream's mock)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (owner, id)")

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)",
                (
                    default_owner(context),
                    thread_id,
                    item.id,
                    sort_key(item.created_at),
                    self._next_seq(db),
                    _codec.encode_item(item),
                ),
            )
