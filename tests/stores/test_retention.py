"""erase_owner and prune on every store: the opt-in RetentionConformance rules, attachment
bytes deleted through the attachment backend, and a concurrent writer during a prune."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from chatkit.store import NotFoundError
from chatkit.types import FileAttachment, ThreadMetadata

from chatkit_kit.attachments import LocalBlobStorage
from chatkit_kit.attachments.direct import DirectUploadAttachmentStore
from chatkit_kit.stores import MemoryStore, RetentionStore
from chatkit_kit.testing import RetentionConformance
from chatkit_kit.testing.retention import _message

from .sql_support import Flavour


class TestMemoryStoreRetention(RetentionConformance):
    def make_store(self) -> Any:
        return MemoryStore()


class _SQLRetention(RetentionConformance):
    flavour: Flavour

    async def make_store(self) -> Any:
        return await self.flavour.make()


class TestSQLiteRetention(_SQLRetention):
    @pytest.fixture(autouse=True)
    def _database(self, sqlite_db: Path) -> None:
        self.flavour = Flavour("sqlite", None, sqlite_db)


class _PostgresRetention(_SQLRetention):
    driver: str

    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str, pg_schema: str) -> None:
        self.flavour = Flavour(self.driver, postgres_dsn, schema=pg_schema)


class TestSQLAlchemyAsyncpgRetention(_PostgresRetention):
    driver = "sqlalchemy+asyncpg"


class TestSQLAlchemyPsycopgRetention(_PostgresRetention):
    driver = "sqlalchemy+psycopg"


class TestAsyncpgStoreRetention(_PostgresRetention):
    driver = "asyncpg"


class _MariaDBRetention(_SQLRetention):
    driver: str

    @pytest.fixture(autouse=True)
    def _database(self, mysql_database: str) -> None:
        self.flavour = Flavour(self.driver, mysql_database)


class TestSQLAlchemyAsyncmyRetention(_MariaDBRetention):
    driver = "mysql+asyncmy"


class TestSQLAlchemyAiomysqlRetention(_MariaDBRetention):
    driver = "mysql+aiomysql"


class TestAsyncpgStorePgBouncerRetention(RetentionConformance):
    @pytest.fixture(autouse=True)
    def _database(self, pgbouncer_dsn: str, pg_schema: str) -> None:
        self.flavour = Flavour("asyncpg@pgbouncer", pgbouncer_dsn, schema=pg_schema)

    async def make_store(self) -> Any:
        return await self.flavour.make()


def test_every_store_is_a_retention_store() -> None:
    assert isinstance(MemoryStore(), RetentionStore)


class _NoRetention(RetentionConformance):
    """A store without the capability: the rules skip with a message instead of failing."""

    def make_store(self) -> Any:
        return object()


def test_stores_without_the_capability_are_not_failed() -> None:
    with pytest.raises(pytest.skip.Exception, match="opt-in capability"):
        _NoRetention().test_prune_owner_limits_it_to_that_owner()


@dataclass
class Ctx:
    user_id: str


OLD = datetime.now(timezone.utc) - timedelta(days=400)


async def test_memory_store_erases_attachment_bytes(tmp_path: Path) -> None:
    await _check_attachment_bytes(MemoryStore(), tmp_path)


async def test_sql_stores_erase_attachment_bytes(flavour: Flavour, tmp_path: Path) -> None:
    await _check_attachment_bytes(await flavour.make(), tmp_path)


async def _check_attachment_bytes(store: Any, tmp_path: Path) -> None:
    """prune and erase_owner delete attachment bytes through the backend, bytes first."""
    blobs = LocalBlobStorage(tmp_path / "blobs")
    backend = DirectUploadAttachmentStore(store, blobs, base_url="http://127.0.0.1/chatkit")
    alice, bob = Ctx(f"a-{uuid.uuid4().hex[:8]}"), Ctx(f"b-{uuid.uuid4().hex[:8]}")
    keys: dict[tuple[str, str], str] = {}
    try:
        for ctx in (alice, bob):
            owner = store.owner_key(ctx)
            await store.save_thread(ThreadMetadata(id="old", created_at=OLD), ctx)
            await store.add_thread_item("old", _message("old", "m0", OLD), ctx)
            for attachment_id, thread_id in (("a_sent", "old"), ("a_unsent", None)):
                key = backend._new_object_key(owner)
                await blobs.put(key, b"hello", content_type="text/plain")
                attachment = FileAttachment(
                    id=attachment_id,
                    name="a.txt",
                    mime_type="text/plain",
                    thread_id=thread_id,
                    metadata=backend._new_metadata(key, 5),
                )
                await store.save_attachment(attachment, ctx)
                keys[ctx.user_id, attachment_id] = key

        # prune: the old thread's attachment goes, bytes first; the unsent one stays.
        assert await store.prune(timedelta(days=90), store.owner_key(bob), attachments=backend) == 1
        assert await blobs.stat(keys[bob.user_id, "a_sent"]) is None
        assert await blobs.stat(keys[bob.user_id, "a_unsent"]) is not None
        with pytest.raises(NotFoundError):
            await store.load_attachment("a_sent", bob)

        # erase_owner: every attachment of that owner, sent or not; others untouched.
        assert await store.erase_owner(store.owner_key(alice), attachments=backend) == 1
        for attachment_id in ("a_sent", "a_unsent"):
            assert await blobs.stat(keys[alice.user_id, attachment_id]) is None
        assert await blobs.stat(keys[bob.user_id, "a_unsent"]) is not None
        assert (await store.load_attachment("a_unsent", bob)).id == "a_unsent"
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            await close()


async def test_a_writer_keeps_working_during_a_prune(sql_store: Any) -> None:
    """Batches are short statements: writes to other threads interleave with a long prune."""
    ctx = Ctx("u")
    owner = sql_store.owner_key(ctx)
    for t in range(6):
        await sql_store.save_thread(ThreadMetadata(id=f"old{t}", created_at=OLD), ctx)
        for n in range(40):
            await sql_store.add_thread_item(
                f"old{t}", _message(f"old{t}", f"m{n:03d}", OLD + timedelta(seconds=n)), ctx
            )
    writer = Ctx("writer")
    await sql_store.save_thread(ThreadMetadata(id="live", created_at=datetime.now()), writer)
    written: list[str] = []
    done = asyncio.Event()

    async def write() -> None:
        n = 0
        while not done.is_set() or n < 5:
            item = _message("live", f"w{n:04d}", datetime.now(timezone.utc))
            await sql_store.add_thread_item("live", item, writer)
            written.append(item.id)
            n += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(write())
    try:
        pruned = await sql_store.prune(timedelta(days=90), owner, batch_size=7)
    finally:
        done.set()
        await task
    assert pruned == 6
    page = await sql_store.load_thread_items("live", None, 100, "asc", writer)
    assert [i.id for i in page.data] == written[:100]
    assert (await sql_store.load_threads(10, None, "asc", ctx)).data == []
