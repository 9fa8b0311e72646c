"""A saturated pool: calls wait a bounded time, then raise DatabaseTimeoutError (a 503 at the
endpoint), and the store works again once a connection is free."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from chatkit.store import NotFoundError

from chatkit_kit.errors import DatabaseTimeoutError

from .sql_support import Flavour


@pytest.mark.parametrize("name", ["asyncpg", "sqlalchemy+asyncpg", "sqlalchemy+psycopg"])
async def test_a_saturated_pool_waits_a_bounded_time(
    name: str, postgres_dsn: str, pg_schema: str
) -> None:
    flavour = Flavour(name, postgres_dsn, schema=pg_schema)
    if name == "asyncpg":
        store: Any = await flavour.make(pool_size=1, pool_timeout=0.3)
    else:
        store = await flavour.make(pool_size=1, max_overflow=0, pool_timeout=0.3)
    ctx = {"user_id": "pool-wait"}
    try:
        with pytest.raises(NotFoundError):
            await store.load_thread("t", ctx)  # schema checked, one connection made
        if name == "asyncpg":
            held = await store.pool.acquire()
        else:
            held = await store.engine.connect()
        try:
            started = time.monotonic()
            # Bounded: the pool timeout ends the wait (the outer 60 s only catches a hang, as a
            # TimeoutError, which is not a DatabaseTimeoutError); it waited for a connection
            # first (a busy machine only makes that wait longer).
            with pytest.raises(DatabaseTimeoutError, match="timed out"):
                await asyncio.wait_for(store.load_thread("t", ctx), 60)
            assert time.monotonic() - started >= 0.25
        finally:
            if name == "asyncpg":
                await store.pool.release(held)
            else:
                await held.close()
        with pytest.raises(NotFoundError):
            await store.load_thread("t", ctx)
    finally:
        await store.close()


def test_pool_timeout_is_validated() -> None:
    from chatkit_kit.stores.asyncpg import AsyncpgStore

    with pytest.raises(ValueError, match="pool_timeout"):
        AsyncpgStore(object(), pool_timeout=0)
