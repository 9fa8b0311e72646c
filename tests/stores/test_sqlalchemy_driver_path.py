"""SQLAlchemyStore on PostgreSQL runs single statements and transactions on the pooled driver
connection itself: the engine's other users still get connections as SQLAlchemy configured them,
a failed transaction there is rolled back whole, and engines with execution events or statement
logging keep SQLAlchemy's execution (instrumentation sees every statement), as do transactions of
engines that set an isolation level."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from chatkit.types import ThreadMetadata, UserMessageItem, UserMessageTextContent
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatkit_kit.errors import DatabaseError
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx

from .sql_support import sqlalchemy_url

DRIVERS = ("asyncpg", "psycopg")
T0 = datetime(2026, 3, 4, 5, 6, 7)


@pytest.fixture(params=DRIVERS)
async def engine(request: pytest.FixtureRequest, postgres_dsn: str) -> AsyncIterator[AsyncEngine]:
    """An engine of one connection, so every checkout gets the connection the store used."""
    engine = create_async_engine(
        sqlalchemy_url(postgres_dsn, request.param), pool_size=1, max_overflow=0
    )
    try:
        yield engine
    finally:
        await engine.dispose()


async def _store(engine: AsyncEngine, pg_schema: str) -> SQLAlchemyStore[Ctx]:
    store: SQLAlchemyStore[Ctx] = SQLAlchemyStore(engine, schema=pg_schema)
    await store.load_threads(1, None, "asc", Ctx("warm-up"))  # the schema check, once
    return store


def _record_driver_statements(store: SQLAlchemyStore[Any], *, fail: str | None = None) -> list[str]:
    """Have `store`'s driver runner append each statement it runs to the list returned; a
    statement that starts with `fail` runs as a statement that fails (division by zero)."""
    seen: list[str] = []
    runner: Any = store._driver_runner
    assert runner is not None

    def recorded(sql: str, params: Any) -> tuple[str, Any]:
        seen.append(sql)
        if fail is not None and sql.startswith(fail):
            return "SELECT 1 / 0", None
        return sql, params

    class Recording(runner):  # type: ignore[misc]
        __slots__ = ()

        async def fetch(self, sql: str, params: Any) -> Any:
            return await super().fetch(*recorded(sql, params))

        async def fetch_value(self, sql: str, params: Any) -> Any:
            return await super().fetch_value(*recorded(sql, params))

        async def execute(self, sql: str, params: Any) -> None:
            await super().execute(*recorded(sql, params))

        async def execute_count(self, sql: str, params: Any) -> int:
            count: int = await super().execute_count(*recorded(sql, params))
            return count

    store._driver_runner = Recording
    return seen


async def _owner_with_thread(store: SQLAlchemyStore[Ctx]) -> Ctx:
    """A new owner, with a thread "t" holding one item "m"."""
    ctx = Ctx(f"driver-{uuid.uuid4().hex}")
    await _thread_with_item(store, ctx)
    return ctx


async def _thread_with_item(store: SQLAlchemyStore[Ctx], ctx: Ctx) -> None:
    await store.save_thread(ThreadMetadata(id="t", created_at=T0), ctx)
    item = UserMessageItem(
        id="m",
        thread_id="t",
        created_at=T0,
        content=[UserMessageTextContent(text="hello")],
        inference_options={},
    )
    await store.add_thread_item("t", item, ctx)


async def test_a_transaction_runs_on_the_driver_connection(
    engine: AsyncEngine, pg_schema: str
) -> None:
    store = await _store(engine, pg_schema)
    ctx = await _owner_with_thread(store)
    seen = _record_driver_statements(store)
    await store.delete_thread("t", ctx)
    assert [sql.split()[0] for sql in seen] == ["BEGIN", "DELETE", "DELETE", "COMMIT"], seen
    assert "chatkit_threads" in seen[1] and "chatkit_thread_items" in seen[2], seen
    assert (await store.load_threads(10, None, "asc", ctx)).data == []
    assert (await store.load_thread_items("t", None, 10, "asc", ctx)).data == []
    await _thread_with_item(store, ctx)  # the connection went back to the pool idle
    await _check_the_app_gets_a_transaction(engine, pg_schema, ctx)


async def test_a_failed_transaction_on_the_driver_connection_is_rolled_back(
    engine: AsyncEngine, pg_schema: str
) -> None:
    store = await _store(engine, pg_schema)
    ctx = await _owner_with_thread(store)
    # The items' delete fails after the thread row's delete ran in the same transaction.
    seen = _record_driver_statements(
        store, fail=f'DELETE FROM "{pg_schema}"."chatkit_thread_items"'
    )
    with pytest.raises(DatabaseError):
        await store.delete_thread("t", ctx)
    assert [sql.split()[0] for sql in seen] == ["BEGIN", "DELETE", "DELETE", "ROLLBACK"], seen
    # Nothing of the call stays applied, and the store and the engine go on.
    assert (await store.load_thread("t", ctx)).id == "t"
    items_left = (await store.load_thread_items("t", None, 10, "asc", ctx)).data
    assert [item.id for item in items_left] == ["m"]
    await _check_the_app_gets_a_transaction(engine, pg_schema, ctx)


async def test_an_engine_setting_an_isolation_level_keeps_it_for_transactions(
    postgres_dsn: str, pg_schema: str
) -> None:
    """SQLAlchemy applies the engine's isolation level to the transactions it begins; a BEGIN on
    the driver connection would not, so those transactions keep SQLAlchemy's execution (for an
    isolation level given to create_engine and one given as an execution option)."""
    for driver, option in itertools.product(DRIVERS, (False, True)):
        url = sqlalchemy_url(postgres_dsn, driver)
        if option:
            engine = create_async_engine(url).execution_options(isolation_level="REPEATABLE READ")
        else:
            engine = create_async_engine(url, isolation_level="REPEATABLE READ")
        try:
            store = await _store(engine, pg_schema)
            ctx = await _owner_with_thread(store)
            seen = _record_driver_statements(store)
            await store.delete_thread("t", ctx)
            assert seen == [], (driver, option, seen)
            assert (await store.load_threads(10, None, "asc", ctx)).data == []
            if not option:  # (an execution option registers an event: SQLAlchemy runs all)
                assert len(seen) == 1 and "chatkit_threads" in seen[0], (driver, seen)
        finally:
            await engine.dispose()


async def test_the_engines_other_users_get_transactional_connections(
    engine: AsyncEngine, pg_schema: str
) -> None:
    store = await _store(engine, pg_schema)
    ctx = Ctx(f"driver-{uuid.uuid4().hex}")
    await store.save_thread(ThreadMetadata(id="t", created_at=T0), ctx)
    assert (await store.load_thread("t", ctx)).id == "t"
    await _check_the_app_gets_a_transaction(engine, pg_schema, ctx)
    assert (await store.load_thread("t", ctx)).id == "t"  # and the store goes on


async def _check_the_app_gets_a_transaction(engine: AsyncEngine, pg_schema: str, ctx: Ctx) -> None:
    """The app's own transaction on the pooled connection is rolled back, so not applied (a
    connection left in autocommit would apply the update at once); `ctx` owns a thread "t"."""
    table = f'"{pg_schema}".chatkit_threads'
    async with engine.connect() as conn:
        await conn.execute(
            text(f"UPDATE {table} SET sort_key = -1 WHERE owner = :owner AND id = 't'"),
            {"owner": ctx.user_id},
        )
        await conn.rollback()
    async with engine.connect() as conn:
        sort_key = await conn.scalar(
            text(f"SELECT sort_key FROM {table} WHERE owner = :owner AND id = 't'"),
            {"owner": ctx.user_id},
        )
    assert sort_key is not None and sort_key != -1


async def test_an_engine_with_execution_events_sees_every_statement(
    engine: AsyncEngine, pg_schema: str
) -> None:
    store = await _store(engine, pg_schema)
    ctx = Ctx(f"driver-{uuid.uuid4().hex}")
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await store.save_thread(ThreadMetadata(id="t", created_at=T0), ctx)
        await store.load_thread("t", ctx)
        await store.load_threads(10, None, "asc", ctx)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert len(seen) == 3, seen
    assert all("chatkit_threads" in statement for statement in seen), seen
    seen.clear()
    await store.load_thread("t", ctx)  # listener removed: the driver path again, still works
    assert seen == []


async def test_an_engine_logging_statements_logs_every_statement(
    engine: AsyncEngine, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = await _store(engine, pg_schema)
    ctx = Ctx(f"driver-{uuid.uuid4().hex}")
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        await store.save_thread(ThreadMetadata(id="t", created_at=T0), ctx)
        await store.load_thread("t", ctx)
    logged = [r.getMessage() for r in caplog.records if "chatkit_threads" in r.getMessage()]
    assert len(logged) == 2, logged


def test_the_sqlalchemy_internals_the_driver_path_reads_exist() -> None:
    """The driver path asks SQLAlchemy whether an engine has execution events or logs statements
    (private members): fail loudly here, not silently elsewhere, when an upgrade renames them."""
    engine = create_async_engine("sqlite+aiosqlite://")
    sync = engine.sync_engine
    assert isinstance(sync._has_events, bool)
    assert isinstance(sync.dialect._has_events, bool)
    assert sync._should_log_info() in (True, False)
    assert callable(getattr(sync.pool, "_invalidate", None))
    assert sync.dialect._on_connect_isolation_level is None
    isolated = create_async_engine("sqlite+aiosqlite://", isolation_level="SERIALIZABLE")
    assert isolated.sync_engine.dialect._on_connect_isolation_level == "SERIALIZABLE"
