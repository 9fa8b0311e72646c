"""Every chatkit-kit store implements AttachmentIndex and the thread-delete hook the same way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from chatkit.store import NotFoundError
from chatkit.types import Attachment, FileAttachment, ThreadMetadata

from chatkit_kit.stores import AttachmentIndex, MemoryStore

from .sql_support import (
    FLAVOURS,
    MYSQL_FLAVOURS,
    Flavour,
    create_database,
    drop_database,
    drop_schema,
    new_schema_name,
)

FUTURE = datetime(2999, 1, 1, tzinfo=timezone.utc)
PAST = datetime(2000, 1, 1, tzinfo=timezone.utc)


@dataclass
class Ctx:
    user_id: str


A, B = Ctx("a"), Ctx("b")


def attachment(attachment_id: str, thread_id: str | None = None) -> FileAttachment:
    return FileAttachment(
        id=attachment_id, name="f.txt", mime_type="text/plain", thread_id=thread_id
    )


@pytest.fixture(params=("memory", *FLAVOURS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An empty store of every kind (PostgreSQL ones in a schema, MariaDB ones in a database
    of their own)."""
    kind = request.param
    if kind == "memory":
        yield MemoryStore()
        return
    schema = None
    database = None
    if kind == "sqlite":
        flavour = Flavour("sqlite", None, tmp_path / "index.db")
    elif kind in MYSQL_FLAVOURS:
        database = await asyncio.to_thread(create_database, request.getfixturevalue("mariadb_url"))
        flavour = Flavour(kind, database)
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        schema = new_schema_name()
        flavour = Flavour(kind, dsn, schema=schema)
    sql_store = await flavour.make()
    try:
        await sql_store.migrate()
        yield sql_store
    finally:
        await sql_store.close()
        if schema is not None:
            await asyncio.to_thread(drop_schema, flavour.dsn or "", schema)
        if database is not None:
            await asyncio.to_thread(drop_database, database)


async def test_every_store_is_an_attachment_index(store: Any) -> None:
    assert isinstance(store, AttachmentIndex)


async def test_list_thread_attachments_is_owner_scoped(store: Any) -> None:
    await store.save_attachment(attachment("x", "thr_1"), A)
    await store.save_attachment(attachment("y", "thr_2"), A)
    await store.save_attachment(attachment("z", "thr_1"), B)
    await store.save_attachment(attachment("w"), A)
    assert [a.id for a in await store.list_thread_attachments("thr_1", A)] == ["x"]
    assert [a.id for a in await store.list_thread_attachments("thr_1", B)] == ["z"]
    assert await store.list_thread_attachments("thr_9", A) == []
    assert await store.list_thread_attachments("bad\x00id", A) == []


async def test_list_unattached_spans_owners_and_respects_cutoff_and_limit(store: Any) -> None:
    await store.save_attachment(attachment("first"), A)
    await store.save_attachment(attachment("sent", "thr_1"), A)
    await store.save_attachment(attachment("second"), B)
    found = await store.list_unattached_attachments(FUTURE)
    assert sorted((row.owner, row.attachment.id) for row in found) == [
        ("a", "first"),
        ("b", "second"),
    ]
    now = datetime.now(timezone.utc)
    for row in found:
        assert row.saved_at.tzinfo is not None
        assert now - timedelta(minutes=5) < row.saved_at <= now + timedelta(seconds=2)
        assert isinstance(row.attachment, FileAttachment) and row.attachment.thread_id is None
    assert await store.list_unattached_attachments(PAST) == []
    assert len(await store.list_unattached_attachments(FUTURE, limit=1)) == 1
    # Once sent (saved again with its thread), an attachment is no orphan.
    await store.save_attachment(attachment("first", "thr_2"), A)
    assert [r.attachment.id for r in await store.list_unattached_attachments(FUTURE)] == ["second"]


async def test_delete_orphan_attachment_only_while_unattached(store: Any) -> None:
    await store.save_attachment(attachment("orphan"), A)
    await store.save_attachment(attachment("sent", "thr_1"), A)
    assert await store.delete_orphan_attachment("b", "orphan") is False  # another owner's key
    assert await store.delete_orphan_attachment("a", "sent") is False
    assert await store.delete_orphan_attachment("a", "orphan") is True
    assert await store.delete_orphan_attachment("a", "orphan") is False
    with pytest.raises(NotFoundError):
        await store.load_attachment("orphan", A)
    assert (await store.load_attachment("sent", A)).id == "sent"


@dataclass
class Listener:
    """An attachment presenter that listens for thread deletes."""

    store: Any
    fail: bool = False
    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def present_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        return attachment

    async def before_thread_delete(self, thread_id: str, context: Any) -> None:
        # Called before anything is deleted: the thread still loads.
        await self.store.load_thread(thread_id, context)
        self.calls.append((thread_id, context))
        if self.fail:
            raise RuntimeError("cascade failed")


async def test_delete_thread_calls_the_hook_first(store: Any) -> None:
    listener = Listener(store)
    store.attachment_presenter = listener
    await store.save_thread(ThreadMetadata(id="thr_1", created_at=datetime.now()), A)
    await store.delete_thread("thr_1", A)
    assert listener.calls == [("thr_1", A)]
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_1", A)


async def test_failing_hook_keeps_the_thread(store: Any) -> None:
    store.attachment_presenter = Listener(store, fail=True)
    await store.save_thread(ThreadMetadata(id="thr_1", created_at=datetime.now()), A)
    with pytest.raises(RuntimeError, match="cascade failed"):
        await store.delete_thread("thr_1", A)
    assert (await store.load_thread("thr_1", A)).id == "thr_1"


async def test_memory_store_lists_orphans_oldest_first() -> None:
    """SQL rows tie within a second (SQLite CURRENT_TIMESTAMP); MemoryStore keeps exact order."""
    store: MemoryStore[Ctx] = MemoryStore()
    await store.save_attachment(attachment("first"), A)
    await store.save_attachment(attachment("second"), B)
    await store.save_attachment(attachment("first"), A)  # re-save keeps the first saved time
    rows = await store.list_unattached_attachments(FUTURE)
    assert [(r.owner, r.attachment.id) for r in rows] == [("a", "first"), ("b", "second")]
    assert rows[0].saved_at <= rows[1].saved_at
