"""Same input, same outcome in every store: odd ids, keys at the byte limits, clean connections.

Every store runs here: MemoryStore, SQLAlchemyStore on SQLite, on PostgreSQL through asyncpg
and psycopg and on MariaDB through asyncmy and aiomysql, and AsyncpgStore. After every refused
call on PostgreSQL the test takes an ACCESS EXCLUSIVE lock with NOWAIT on the store's tables (on
MariaDB a write lock with a 1 s wait): it fails if any pooled connection still holds a
transaction or a lock.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    ThreadMetadata,
)

from chatkit_kit.stores import MAX_ID_BYTES, MAX_OWNER_BYTES, MemoryStore
from tests.fixtures.context import Ctx

from .sql_support import FLAVOURS, MYSQL_FLAVOURS, Flavour, assert_no_locks

T0 = datetime(2026, 1, 2, 3, 4, 5)


def incompressible(size_bytes: int, seed: int) -> str:
    """`size_bytes` of UTF-8 made of random 4-byte characters (nothing for a compressor)."""
    assert size_bytes % 4 == 0
    rng = random.Random(seed)
    return "".join(chr(rng.randrange(0x10000, 0x10FFFF)) for _ in range(size_bytes // 4))


def thread(thread_id: str, at: datetime = T0) -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, created_at=at)


def item(item_id: str, thread_id: str = "t", at: datetime = T0) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=item_id, thread_id=thread_id, created_at=at, content=[AssistantMessageContent(text="x")]
    )


def attachment(attachment_id: str, thread_id: str | None = None) -> FileAttachment:
    return FileAttachment(
        id=attachment_id, name="f.txt", mime_type="text/plain", thread_id=thread_id
    )


@dataclass
class Subject:
    """A store of one kind, and a check that its pool holds no lock after a failed call."""

    kind: str
    store: Any
    assert_clean: Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


@pytest.fixture(params=("memory", *FLAVOURS))
def kind(request: pytest.FixtureRequest) -> Flavour | None:
    """None for MemoryStore, else the SQL flavour on the session's migrated tables."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return Flavour("sqlite", None, request.getfixturevalue("sqlite_db"))
    if request.param in MYSQL_FLAVOURS:
        return Flavour(request.param, request.getfixturevalue("mysql_database"))
    dsn: str = request.getfixturevalue("postgres_dsn")
    return Flavour(request.param, dsn, schema=request.getfixturevalue("pg_schema"))


@pytest.fixture
async def subject(kind: Flavour | None) -> AsyncIterator[Subject]:
    if kind is None:
        yield Subject("memory", MemoryStore(), _nothing)
        return
    flavour = kind
    store = await flavour.make()
    names = store._names

    async def assert_clean() -> None:
        if flavour.dsn is None:
            return
        tables = ", ".join((names.threads, names.items, names.attachments))
        await asyncio.to_thread(assert_no_locks, flavour.dsn, tables)

    try:
        yield Subject(flavour.name, store, assert_clean)
    finally:
        await store.close()


ODD_IDS = [
    "",
    "lone \ud800 surrogate",
    "\udfff",
    "nul\x00id",
    "x" * (MAX_ID_BYTES + 1),
    "🧵" * (MAX_ID_BYTES // 4 + 1),  # 129 characters, 516 bytes
    "é" * (MAX_ID_BYTES // 2 + 1),  # 257 characters, 514 bytes
]


@pytest.mark.parametrize("bad", ODD_IDS, ids=range(len(ODD_IDS)))
async def test_odd_ids_are_refused_on_write_and_unknown_on_read(subject: Subject, bad: str) -> None:
    store, ctx = subject.store, Ctx(f"odd-{uuid.uuid4().hex}")
    await store.save_thread(thread("t"), ctx)
    await store.add_thread_item("t", item("m"), ctx)
    writes: list[Callable[[], Awaitable[object]]] = [
        lambda: store.save_thread(thread(bad), ctx),
        lambda: store.add_thread_item(bad, item("m2", bad), ctx),
        lambda: store.add_thread_item("t", item(bad), ctx),
        lambda: store.save_item("t", item(bad), ctx),
        lambda: store.save_attachment(attachment(bad), ctx),
    ]
    for write in writes:
        with pytest.raises(ValueError, match="cannot be stored"):
            await write()
        await subject.assert_clean()
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: store.load_thread(bad, ctx),
        lambda: store.load_item("t", bad, ctx),
        lambda: store.load_item(bad, "m", ctx),
        lambda: store.load_attachment(bad, ctx),
        lambda: store.load_threads(10, bad, "asc", ctx),
        lambda: store.load_thread_items("t", bad, 10, "desc", ctx),
    ]
    for read in reads:
        with pytest.raises(NotFoundError):
            await read()
        await subject.assert_clean()
    assert (await store.load_thread_items(bad, None, 10, "asc", ctx)).data == []
    for delete in (
        store.delete_thread(bad, ctx),
        store.delete_thread_item("t", bad, ctx),
        store.delete_thread_item(bad, "m", ctx),
        store.delete_attachment(bad, ctx),
    ):
        assert await delete is None
    await subject.assert_clean()
    # Nothing was stored, nothing was deleted.
    assert [t.id for t in (await store.load_threads(10, None, "asc", ctx)).data] == ["t"]
    assert [i.id for i in (await store.load_thread_items("t", None, 10, "asc", ctx)).data] == ["m"]


@pytest.mark.parametrize(
    "owner",
    ["", "lone \ud800", "nul\x00", "x" * (MAX_OWNER_BYTES + 1), "🧵" * (MAX_OWNER_BYTES // 4 + 1)],
    ids=range(5),
)
async def test_odd_owner_keys_are_refused_before_any_query(subject: Subject, owner: str) -> None:
    store, ctx = subject.store, Ctx(owner)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.save_thread(thread("t"), ctx),
        lambda: store.load_thread("t", ctx),
        lambda: store.load_threads(10, None, "asc", ctx),
        lambda: store.delete_thread("t", ctx),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="owner"):
            await call()
    await subject.assert_clean()


async def test_keys_at_the_byte_limits_fit_every_index(subject: Subject) -> None:
    """The largest legal owner, thread id and item id together, none of it compressible."""
    store = subject.store
    seed = random.randrange(1 << 30)
    owner = incompressible(MAX_OWNER_BYTES, seed)
    thread_id = incompressible(MAX_ID_BYTES, seed + 1)
    item_ids = [incompressible(MAX_ID_BYTES, seed + 2 + n) for n in range(3)]
    attachment_id = incompressible(MAX_ID_BYTES, seed + 9)
    assert len(owner.encode()) == MAX_OWNER_BYTES and len(thread_id.encode()) == MAX_ID_BYTES
    ctx = Ctx(owner)

    await store.save_thread(thread(thread_id), ctx)
    for n, item_id in enumerate(item_ids):
        await store.add_thread_item(thread_id, item(item_id, thread_id, T0 + timedelta(n)), ctx)
    await store.save_item(thread_id, item(item_ids[1], thread_id), ctx)
    await store.save_attachment(attachment(attachment_id, thread_id), ctx)

    assert (await store.load_thread(thread_id, ctx)).id == thread_id
    assert (await store.load_item(thread_id, item_ids[2], ctx)).id == item_ids[2]
    assert (await store.load_attachment(attachment_id, ctx)).id == attachment_id
    page = await store.load_thread_items(thread_id, item_ids[0], 1, "asc", ctx)
    assert [i.id for i in page.data] == [item_ids[1]] and page.after == item_ids[1]
    threads = await store.load_threads(1, None, "desc", ctx)
    assert [t.id for t in threads.data] == [thread_id]
    listed = await store.list_thread_attachments(thread_id, ctx)
    assert [a.id for a in listed] == [attachment_id]

    # One byte more is refused, the same way everywhere.
    with pytest.raises(ValueError, match="cannot be stored"):
        await store.save_thread(thread(thread_id + "x"), ctx)
    with pytest.raises(ValueError, match="owner"):
        await store.load_threads(1, None, "asc", Ctx(owner + "x"))

    await store.delete_thread_item(thread_id, item_ids[0], ctx)
    await store.delete_attachment(attachment_id, ctx)
    await store.delete_thread(thread_id, ctx)
    assert (await store.load_thread_items(thread_id, None, 10, "asc", ctx)).data == []
    await subject.assert_clean()
