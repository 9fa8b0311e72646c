"""The default statement timeout, on every SQL store flavour (PgBouncer in transaction mode too).

A statement that waits for a lock another connection holds (and never releases while the call
runs) ends with `DatabaseTimeoutError` after the store's `statement_timeout`, instead of
waiting for the lock holder. Asserted by outcome: the call raises that error while the lock is
still held (an outer bound only turns a hang into a failure); afterwards the server no longer
runs the statement (PostgreSQL: the driver's cancel request reached it), every pooled
connection is back, the store works, and the event loop logged nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from chatkit_kit.errors import DatabaseTimeoutError, DatabaseUnavailableError
from chatkit_kit.stores import DEFAULT_STATEMENT_TIMEOUT_SECONDS
from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx

from .sql_support import (
    MYSQL_FLAVOURS,
    POSTGRES_FLAVOURS,
    Flavour,
    database_of,
    mysql_connect,
)
from .test_cancellation import (  # storm_flavour: the fixture, every flavour
    _checked_out,
    _wait_until_returned,
    storm_flavour,  # noqa: F401
)
from .test_sql_connection import TcpProxy, _via
from .test_sql_faults import item, thread

TIMEOUT = 1.0
"""The statement timeout of the stores under test (seconds) while a lock is held or the network
is frozen; the calls before and after run with the default (a loaded machine may take longer
than TIMEOUT for a plain call)."""
OUTER_BOUND = 20.0
"""Turns a call that waits for the lock holder into a failure, not a hang: far above TIMEOUT,
below SQLite's default busy timeout (30 s), so only `statement_timeout` can end the wait."""


@contextlib.contextmanager
def threads_locked(flavour: Flavour) -> Iterator[Any]:
    """Another connection holds a lock on the threads table that blocks the store's calls
    (SQLite: the write lock, which blocks writers); released on exit."""
    if flavour.name == "sqlite":
        conn = sqlite3.connect(str(flavour.sqlite_path), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
        finally:
            conn.rollback()
            conn.close()
    elif flavour.is_mysql:
        assert flavour.dsn is not None
        mysql = mysql_connect(flavour.dsn, database_of(flavour.dsn))
        try:
            with mysql.cursor() as cur:
                cur.execute("LOCK TABLES chatkit_threads WRITE")
            yield mysql
        finally:
            with mysql.cursor() as cur:
                cur.execute("UNLOCK TABLES")
            mysql.close()
    else:
        pg = psycopg.connect(flavour.admin)
        try:
            pg.execute(f'LOCK TABLE "{flavour.schema}".chatkit_threads IN ACCESS EXCLUSIVE MODE')
            yield pg
        finally:
            pg.rollback()
            pg.close()


def _waiting_for_locks(pg: Any) -> int:
    """PostgreSQL backends waiting for a lock (the store's statement, until it is cancelled)."""
    row = pg.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
    return int(row[0])


async def _blocked_call(store: Any, ctx: Ctx, flavour: Flavour) -> None:
    if flavour.name == "sqlite":  # readers never wait in WAL mode: a write
        await store.save_thread(thread(f"blocked-{uuid.uuid4().hex}"), ctx)
    else:
        await store.load_thread("t", ctx)


async def test_a_statement_waiting_past_the_timeout_raises_database_timeout_error(
    storm_flavour: Flavour,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(str(context)))
    kwargs: dict[str, Any] = {"statement_timeout": TIMEOUT, "pool_size": 2}
    if storm_flavour.driver_name != "asyncpg":
        kwargs["max_overflow"] = 0
    store = await storm_flavour.make(**kwargs)
    ctx = Ctx(f"timeout-{uuid.uuid4().hex}")
    try:
        assert store.statement_timeout == TIMEOUT
        store.statement_timeout = DEFAULT_STATEMENT_TIMEOUT_SECONDS
        await store.save_thread(thread("t"), ctx)
        store.statement_timeout = TIMEOUT
        for attempt in range(2):  # twice: the pool does not run dry on timed-out calls
            with threads_locked(storm_flavour) as holder:
                with pytest.raises(DatabaseTimeoutError) as raised:
                    await asyncio.wait_for(_blocked_call(store, ctx, storm_flavour), OUTER_BOUND)
                assert raised.value.retryable, attempt
                if storm_flavour.name != "sqlite":  # the client gave up: it may have been applied
                    assert raised.value.may_have_applied, attempt
                    assert f"statement_timeout={TIMEOUT:g} s" in str(raised.value)
                if storm_flavour.is_postgres:
                    # The driver's cancel request reached PostgreSQL: nothing waits for the
                    # lock any more while it is still held (bounded poll).
                    for _ in range(200):
                        if _waiting_for_locks(holder) == 0:
                            break
                        await asyncio.sleep(0.05)
                    assert _waiting_for_locks(holder) == 0, attempt
        assert await _wait_until_returned(store) == 0
        store.statement_timeout = DEFAULT_STATEMENT_TIMEOUT_SECONDS
        await store.add_thread_item("t", item("i1", "t"), ctx)
        assert (await store.load_item("t", "i1", ctx)).id == "i1"
        assert (await store.load_thread("t", ctx)).id == "t"
        assert _checked_out(store) == 0
    finally:
        await store.close()
        loop.set_exception_handler(None)
    reports.extend(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert not reports, reports[:3]


async def test_stores_have_a_statement_timeout_by_default(
    storm_flavour: Flavour,  # noqa: F811
) -> None:
    async with await storm_flavour.make() as store:
        assert store.statement_timeout == DEFAULT_STATEMENT_TIMEOUT_SECONDS == 30.0
    async with await storm_flavour.make(statement_timeout=None) as store:
        assert store.statement_timeout is None


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "5", True])
async def test_an_unusable_statement_timeout_is_refused(value: Any, tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="statement_timeout"):
        SQLAlchemyStore.from_url(f"sqlite:///{tmp_path}/c.db", statement_timeout=value)
    with pytest.raises(ValueError, match="statement_timeout"):
        AsyncpgStore(object(), statement_timeout=value)


@pytest.fixture(params=POSTGRES_FLAVOURS + MYSQL_FLAVOURS)
def network_flavour(request: pytest.FixtureRequest) -> Flavour:
    name: str = request.param
    if name in MYSQL_FLAVOURS:
        return Flavour(name, request.getfixturevalue("mysql_database"))
    dsn: str = request.getfixturevalue("postgres_dsn")
    return Flavour(name, dsn, schema=request.getfixturevalue("pg_schema"))


async def test_calls_on_a_frozen_connection_end_with_database_timeout_error(
    network_flavour: Flavour,
) -> None:
    """A network black hole (the proxy drops every byte, closes nothing): single statements and
    transactions (delete_thread) end after the statement timeout instead of waiting for TCP to
    give up; once the network is back the store works again."""
    assert network_flavour.dsn is not None
    parts = urlsplit(network_flavour.dsn)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0)
    await proxy.start()
    flavour = Flavour(
        network_flavour.name, _via(network_flavour.dsn, proxy.port), schema=network_flavour.schema
    )
    # A checkout is bounded by the pool timeout plus the statement timeout: a short pool wait.
    kwargs: dict[str, Any] = {"statement_timeout": TIMEOUT, "pool_size": 2, "pool_timeout": 2}
    if flavour.driver_name != "asyncpg":
        kwargs["max_overflow"] = 0
    store = await flavour.make(**kwargs)
    ctx = Ctx(f"frozen-{uuid.uuid4().hex}")
    try:
        store.statement_timeout = DEFAULT_STATEMENT_TIMEOUT_SECONDS
        await store.save_thread(thread("t"), ctx)
        await store.save_thread(thread("gone"), ctx)
        store.statement_timeout = TIMEOUT
        proxy.frozen = True
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.load_thread("t", ctx),
            lambda: store.save_thread(thread("t"), ctx),
            lambda: store.delete_thread("gone", ctx),
        ]
        for n, call in enumerate(calls):
            # The first call's statement goes out on a pooled connection and gets no answer
            # (MySQL: the pool's pre-ping of it gets none); later calls need a new connection,
            # whose connect is bounded as well (a failed connect: DatabaseUnavailableError).
            expected = (
                DatabaseTimeoutError if n == 0 else (DatabaseTimeoutError, DatabaseUnavailableError)
            )
            with pytest.raises(expected) as raised:
                await asyncio.wait_for(call(), OUTER_BOUND)
            assert raised.value.retryable, n
        proxy.frozen = False
        store.statement_timeout = DEFAULT_STATEMENT_TIMEOUT_SECONDS
        assert (await store.load_thread("t", ctx)).id == "t"
        await store.delete_thread("gone", ctx)
        assert await _wait_until_returned(store) == 0
    finally:
        proxy.frozen = False
        await store.close()
        await proxy.stop()
