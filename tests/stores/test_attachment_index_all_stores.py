"""Every chatkit-kit store is an AttachmentIndex.

The AttachmentIndex contract itself (thread attachments, orphans, conditional delete, the
thread-delete hook) runs on every store as `AttachmentIndexConformance`: see
tests/stores/test_sql_conformance.py and tests/testing/test_memory_conformance.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from chatkit.types import FileAttachment

from chatkit_kit.stores import AttachmentIndex, MemoryStore
from tests.fixtures.context import Ctx

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


async def test_memory_store_lists_orphans_oldest_first() -> None:
    """SQL rows tie within a second (SQLite CURRENT_TIMESTAMP); MemoryStore keeps exact order."""
    store: MemoryStore[Ctx] = MemoryStore()
    await store.save_attachment(attachment("first"), A)
    await store.save_attachment(attachment("second"), B)
    await store.save_attachment(attachment("first"), A)  # re-save keeps the first saved time
    rows = await store.list_unattached_attachments(FUTURE)
    assert [(r.owner, r.attachment.id) for r in rows] == [("a", "first"), ("b", "second")]
    assert rows[0].saved_at <= rows[1].saved_at
