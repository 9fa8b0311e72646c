"""SQLAlchemyStore on PostgreSQL runs single statements on the pooled driver connection itself:
the engine's other users still get connections as SQLAlchemy configured them, and engines with
execution events or statement logging keep SQLAlchemy's execution (instrumentation sees every
statement)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from chatkit.types import ThreadMetadata
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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


async def test_the_engines_other_users_get_transactional_connections(
    engine: AsyncEngine, pg_schema: str
) -> None:
    store = await _store(engine, pg_schema)
    ctx = Ctx(f"driver-{uuid.uuid4().hex}")
    await store.save_thread(ThreadMetadata(id="t", created_at=T0), ctx)
    assert (await store.load_thread("t", ctx)).id == "t"
    table = f'"{pg_schema}".chatkit_threads'
    # The app's own transaction on the same pooled connection: rolled back, so not applied
    # (a connection left in autocommit would have applied the update at once).
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
    assert sort_key != -1
    assert (await store.load_thread("t", ctx)).id == "t"  # and the store goes on


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
