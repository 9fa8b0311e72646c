"""Faults on the real PostgreSQL (and SQLite), on every SQL store: each failure is typed.

Killed backends during concurrent writes, statement and lock timeouts, a missing database, a
role that does not exist, an unreachable server, and delete_thread racing item writes. The
tests run through PgBouncer (transaction mode) too, except those that need per-connection
startup settings or unknown roles, which PgBouncer answers itself. After
each failure the store's tables must take an ACCESS EXCLUSIVE lock with NOWAIT (no pooled
connection keeps a transaction or a lock), and the store must keep working. The kill and
delete-race checks are functions that `test_mysql.py` runs on MariaDB too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from chatkit.store import NotFoundError
from chatkit.types import AssistantMessageContent, AssistantMessageItem, ThreadMetadata

from chatkit_kit.errors import (
    ChatKitKitError,
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
)
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx

from .sql_support import Flavour, assert_no_locks

T0 = datetime(2026, 1, 2, 3, 4, 5)
DRIVER_MODULES = ("asyncpg", "psycopg", "sqlalchemy", "sqlite3", "aiosqlite")


def thread(thread_id: str) -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, created_at=T0)


def item(item_id: str, thread_id: str, n: int = 0) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=T0 + timedelta(microseconds=n),
        content=[AssistantMessageContent(text="x")],
    )


def tables_of(store: Any) -> str:
    names = store._names
    return ", ".join((names.threads, names.items, names.attachments))


def assert_typed(error: BaseException) -> None:
    """A chatkit-kit error, with no driver exception type in sight."""
    assert isinstance(error, ChatKitKitError), f"{type(error).__module__}.{type(error).__name__}"
    assert not type(error).__module__.startswith(DRIVER_MODULES)


def with_database(dsn: str, *, user: str | None = None, database: str | None = None) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{user or parts.username or 'postgres'}@{host}"
    path = f"/{database}" if database else parts.path
    return urlunsplit(parts._replace(netloc=netloc, path=path))


@dataclasses.dataclass
class Killable:
    store: Any
    application_name: str
    admin: str  # the store's database, directly (not through PgBouncer)


@pytest.fixture
async def killable(pg_flavour: Flavour) -> AsyncIterator[Killable]:
    """A store in a database of its own, whose connections carry an application_name of their
    own. Its own database: through PgBouncer, a server connection serves every client of one
    database, so killing by application_name in the shared test database could end another
    test's call (another xdist worker's) that PgBouncer had just given that connection."""
    name = f"ckfault_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(_admin, pg_flavour.admin, f'CREATE DATABASE "{name}"')
    admin = with_database(pg_flavour.admin, database=name)
    try:
        setup = SQLAlchemyStore.from_url(admin.replace("postgresql://", "postgresql+psycopg://"))
        async with setup:
            await setup.migrate()
        flavour = dataclasses.replace(
            pg_flavour,
            dsn=with_database(str(pg_flavour.dsn), database=name),
            admin_dsn=admin,
            schema=None,
        )
        store = await flavour.make(settings={"application_name": name})
        try:
            yield Killable(store, name, admin)
        finally:
            await store.close()
    finally:
        await asyncio.to_thread(
            _admin, pg_flavour.admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )


def _admin(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


async def _kill(dsn: str, application_name: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            (application_name,),
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_killed_backends_during_concurrent_writes(killable: Killable) -> None:
    store = killable.store
    await check_killed_connections_during_concurrent_writes(
        store,
        kill=lambda: _kill(killable.admin, killable.application_name),
        assert_unlocked=lambda: asyncio.to_thread(
            assert_no_locks, killable.admin, tables_of(store)
        ),
    )


async def check_killed_connections_during_concurrent_writes(
    store: Any,
    *,
    kill: Callable[[], Awaitable[int]],
    assert_unlocked: Callable[[], Awaitable[None]],
) -> None:
    """Rounds of 200 concurrent writes while `kill` ends the store's server connections.

    Every failure is a DatabaseUnavailableError caused by the driver's error, no acknowledged
    write is lost, afterwards no connection holds a lock (`assert_unlocked`), and a
    SQLAlchemyStore's pool has every connection back (none lost with a killed one).
    """
    ctx = Ctx(f"kill-{uuid.uuid4().hex}")
    await store.save_thread(thread("t"), ctx)
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    killed = 0

    async def write(n: int) -> None:
        try:
            if n % 2:
                await store.add_thread_item("t", item(f"m{n}", "t", n), ctx)
            else:
                await store.save_thread(thread(f"t{n}"), ctx)
        except Exception as error:
            failures.append(error)
        else:
            acknowledged.append(f"m{n}" if n % 2 else f"t{n}")

    deadline = time.monotonic() + 30
    round_ = 0
    while (not failures or killed < 3) and time.monotonic() < deadline:
        writers = [asyncio.ensure_future(write(round_ * 1000 + n)) for n in range(200)]
        for _ in range(4):
            await asyncio.sleep(0.005)
            killed += await kill()
        await asyncio.gather(*writers)
        round_ += 1
    assert killed >= 3 and failures, (killed, len(failures))
    for error in failures:
        assert_typed(error)
        assert isinstance(error, DatabaseUnavailableError), repr(error)
        assert error.__cause__ is not None
    # No acknowledged write was lost.
    for written in acknowledged:
        if written.startswith("m"):
            assert (await store.load_item("t", written, ctx)).id == written
        else:
            assert (await store.load_thread(written, ctx)).id == written
    await assert_unlocked()
    if isinstance(store, SQLAlchemyStore):
        assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def table_locked(dsn: str, tables: str) -> AsyncIterator[None]:
    """Hold ACCESS EXCLUSIVE locks on `tables` until the block ends."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await conn.rollback()


@pytest.mark.parametrize("setting", ["statement_timeout", "lock_timeout"])
async def test_statement_and_lock_timeouts(direct_pg_flavour: Flavour, setting: str) -> None:
    pg_flavour = direct_pg_flavour  # startup settings do not pass PgBouncer
    assert pg_flavour.dsn is not None
    store = await pg_flavour.make(settings={setting: "300"})
    ctx = Ctx(f"timeout-{uuid.uuid4().hex}")
    try:
        await store.save_thread(thread("t"), ctx)  # the schema check happens here, unlocked
        async with table_locked(pg_flavour.admin, tables_of(store)):
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: store.load_thread("t", ctx),
                lambda: store.save_thread(thread("new"), ctx),
                lambda: store.add_thread_item("t", item("m", "t"), ctx),
                lambda: store.delete_thread("t", ctx),
            ]
            for call in calls:
                with pytest.raises(DatabaseTimeoutError) as caught:
                    await call()
                assert_typed(caught.value)
                assert isinstance(caught.value, TimeoutError)
                assert not isinstance(caught.value, ConnectionError)
        await asyncio.to_thread(assert_no_locks, pg_flavour.admin, tables_of(store))
        # Not applied, and the store works again.
        with pytest.raises(NotFoundError):
            await store.load_thread("new", ctx)
        assert (await store.load_thread_items("t", None, 5, "asc", ctx)).data == []
        assert (await store.load_thread("t", ctx)).id == "t"
    finally:
        await store.close()


async def _first_call(flavour: Flavour, dsn: str) -> BaseException:
    """The error of connecting (AsyncpgStore) or of the first call (SQLAlchemyStore)."""
    store = None
    try:
        store = await Flavour(flavour.name, dsn, schema=flavour.schema).make()
        await store.load_thread("t", Ctx("u"))
    except Exception as error:
        return error
    finally:
        if store is not None:
            await store.close()
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize(
    "change", [{"database": "ck_no_such_database"}, {"user": "ck_no_such_role"}]
)
async def test_missing_database_or_role_is_a_configuration_error(
    direct_pg_flavour: Flavour, change: dict[str, str]
) -> None:
    pg_flavour = direct_pg_flavour  # PgBouncer has its own users and databases
    assert pg_flavour.dsn is not None
    error = await _first_call(pg_flavour, with_database(pg_flavour.dsn, **change))
    assert_typed(error)
    assert isinstance(error, DatabaseConfigurationError), repr(error)
    assert not isinstance(error, ConnectionError)  # retry loops must not spin on it
    assert "retrying will not help" in str(error)
    assert next(iter(change.values())) in str(error)


async def test_unreachable_server_is_unavailable(pg_flavour: Flavour) -> None:
    assert pg_flavour.dsn is not None
    parts = urlsplit(pg_flavour.dsn)
    dsn = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:1"))
    error = await _first_call(pg_flavour, dsn)
    assert_typed(error)
    assert isinstance(error, DatabaseUnavailableError), repr(error)


async def test_dropped_tables_are_a_configuration_error(pg_flavour: Flavour) -> None:
    """Tables removed after the store checked them: typed, not a driver error."""
    assert pg_flavour.dsn is not None
    schema = f"ckt_{uuid.uuid4().hex[:12]}"
    store = await pg_flavour.make(schema=schema)
    try:
        await store.migrate()
        await store.save_thread(thread("t"), Ctx("u"))
        await asyncio.to_thread(_drop, pg_flavour.admin, schema)
        with pytest.raises(DatabaseConfigurationError) as caught:
            await store.load_thread("t", Ctx("u"))
        assert_typed(caught.value)
        assert not isinstance(caught.value, ConnectionError)
    finally:
        await store.close()
        await asyncio.to_thread(_drop, pg_flavour.admin, schema)


def _drop(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_delete_thread_racing_item_writes_leaves_no_item(pg_flavour: Flavour) -> None:
    writers = 6
    store = await pg_flavour.make(pool_size=writers + 2, settings=None)
    try:
        await check_delete_thread_racing_item_writes(
            store,
            writers=writers,
            count_items=lambda owner, thread_id: asyncio.to_thread(
                _count_items, pg_flavour.admin, store._names.items, owner, thread_id
            ),
            assert_unlocked=lambda: asyncio.to_thread(
                assert_no_locks, pg_flavour.admin, tables_of(store)
            ),
        )
    finally:
        await store.close()


async def check_delete_thread_racing_item_writes(
    store: Any,
    *,
    writers: int,
    count_items: Callable[[str, str], Awaitable[int]],
    assert_unlocked: Callable[[], Awaitable[None]],
) -> None:
    """After delete_thread returns, no item of the thread exists and every write is refused.

    Every write holds the thread row while it runs, so delete_thread waits for it and then
    deletes its item; a write that reaches the thread after the delete committed, or starts
    after it, finds no row and raises NotFoundError. `writers` tasks keep writing before,
    during and after the delete; the item rows are then counted in the table itself
    (`count_items(owner, thread_id)`). Writers never queue for a connection (the store's pool
    must be larger than `writers`).
    """
    ctx = Ctx(f"race-{uuid.uuid4().hex}")
    await asyncio.gather(*(store.load_thread_items("warm", None, 1, "asc", ctx) for _ in range(8)))
    for round_ in range(8):
        thread_id = f"t{round_}"
        await store.save_thread(thread(thread_id), ctx)
        started: dict[str, float] = {}
        outcome: dict[str, str] = {}
        stop = asyncio.Event()

        async def writer(
            w: int,
            thread_id: str = thread_id,
            stop: asyncio.Event = stop,
            started: dict[str, float] = started,
            outcome: dict[str, str] = outcome,
        ) -> None:
            n = 0
            while not stop.is_set():
                item_id = f"w{w}m{n}"
                started[item_id] = time.monotonic()
                try:
                    write = store.save_item if n % 3 == 0 else store.add_thread_item
                    await write(thread_id, item(item_id, thread_id, n), ctx)
                except NotFoundError:
                    outcome[item_id] = "refused"
                else:
                    outcome[item_id] = "stored"
                n += 1

        tasks = [asyncio.ensure_future(writer(w)) for w in range(writers)]
        # Counted, not timed: some writes are stored first (more in later rounds), and every
        # writer finishes a write that started after the delete returned. The outer 60 s only
        # stops a hang.
        stored = writers + round_

        def enough_stored(outcome: dict[str, str] = outcome, stored: int = stored) -> bool:
            return list(outcome.values()).count("stored") >= stored

        await _until(enough_stored)
        delete_called = time.monotonic()
        await store.delete_thread(thread_id, ctx)
        delete_returned = time.monotonic()

        def writers_went_on(
            started: dict[str, float] = started,
            outcome: dict[str, str] = outcome,
            returned: float = delete_returned,
        ) -> bool:
            return sum(at > returned and i in outcome for i, at in started.items()) >= writers

        await _until(writers_went_on)
        stop.set()
        await asyncio.gather(*tasks)

        before = {i for i, at in started.items() if at < delete_called}
        after = {i for i, at in started.items() if at > delete_returned}
        assert before and any(outcome[i] == "stored" for i in before)
        assert after and all(outcome[i] == "refused" for i in after), sorted(
            i for i in after if outcome[i] != "refused"
        )[:5]
        page = await store.load_thread_items(thread_id, None, 1000, "asc", ctx)
        assert page.data == []
        assert await count_items(ctx.user_id, thread_id) == 0
        with pytest.raises(NotFoundError):
            await store.load_thread(thread_id, ctx)
        await assert_unlocked()


async def _until(condition: Callable[[], bool], seconds: float = 60) -> None:
    """Wait (yielding to the other tasks) until `condition()` holds; fails after `seconds`."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 (the writers' state, no event to wait on)
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), seconds)


def _count_items(dsn: str, items_table: str, owner: str, thread_id: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {items_table} WHERE owner = %s AND thread_id = %s",
            (owner, thread_id),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_migrate_errors_are_typed(direct_pg_flavour: Flavour) -> None:
    pg_flavour = direct_pg_flavour  # PgBouncer has its own users
    assert pg_flavour.dsn is not None
    dsn = with_database(pg_flavour.dsn, user="ck_no_such_role")
    with pytest.raises(DatabaseError) as caught:
        store = await Flavour(pg_flavour.name, dsn, schema=pg_flavour.schema).make()
        try:
            await store.migrate()
        finally:
            await store.close()
    assert isinstance(caught.value, DatabaseConfigurationError)


async def test_sqlite_busy_is_a_timeout_and_a_missing_directory_a_configuration_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "busy.db"
    store = SQLAlchemyStore.from_url(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    ctx = Ctx("u")
    try:
        await store.migrate()
        await store.save_thread(thread("t"), ctx)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(DatabaseTimeoutError) as caught:
                await store.save_thread(thread("new"), ctx)
            assert_typed(caught.value)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        with pytest.raises(NotFoundError):
            await store.load_thread("new", ctx)
        await store.save_thread(thread("new"), ctx)  # works again
    finally:
        await store.close()

    nowhere = SQLAlchemyStore.from_url(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    try:
        with pytest.raises(DatabaseConfigurationError) as missing:
            await nowhere.load_thread("t", ctx)
        assert_typed(missing.value)
    finally:
        await nowhere.close()
        # aiosqlite 0.22 finishes a failed connect's worker thread a moment later; let it post
        # its result while this test's event loop still runs.
        await asyncio.sleep(0.3)
