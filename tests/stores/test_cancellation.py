"""Cancelled calls never leak a pooled connection, on every SQL store flavour.

Storms of store calls cancelled at random points (asyncio timeouts of a few hundred
microseconds up to a few milliseconds, and `Task.cancel()` from outside, as a client disconnect
does), then: every pooled connection is back (none lost, none held by a dead call), every store
call works with the whole pool in use at once, and the event loop logged nothing (no "Future
exception was never retrieved", no "non-checked-in connection"). Bounded in count and time.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
import uuid
from typing import Any

import pytest
from chatkit.store import NotFoundError

from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx

from .sql_support import FLAVOURS, MYSQL_FLAVOURS, PGBOUNCER_FLAVOURS, Flavour
from .test_sql_faults import item, thread

POOL_SIZE = 3
CALLS = 2_000
"""Calls per storm; each is cancelled at a random point, or not at all when it is quick."""
STORM_SECONDS = 60.0
"""An upper bound on one storm (a loaded machine); the storm stops early, never waits longer."""


@pytest.fixture(params=FLAVOURS + PGBOUNCER_FLAVOURS)
def storm_flavour(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Flavour:
    name: str = request.param
    if name == "sqlite":
        return Flavour("sqlite", None, request.getfixturevalue("sqlite_db"))
    if name in MYSQL_FLAVOURS:
        return Flavour(name, request.getfixturevalue("mysql_database"))
    schema: str = request.getfixturevalue("pg_schema")
    dsn: str = request.getfixturevalue("postgres_dsn")
    if name in PGBOUNCER_FLAVOURS:
        return Flavour(name, request.getfixturevalue("pgbouncer_dsn"), schema=schema, admin_dsn=dsn)
    return Flavour(name, dsn, schema=schema)


async def _make(flavour: Flavour) -> Any:
    if flavour.driver_name == "asyncpg":
        return await flavour.make(pool_size=POOL_SIZE, pool_timeout=10)
    return await flavour.make(pool_size=POOL_SIZE, max_overflow=0, pool_timeout=10)


def _checked_out(store: Any) -> int:
    """Connections the pool has handed out and not got back."""
    if isinstance(store, SQLAlchemyStore):
        return int(store.engine.pool.checkedout())  # type: ignore[attr-defined]
    assert isinstance(store, AsyncpgStore)
    pool = store.pool
    return sum(1 for holder in pool._holders if holder._in_use is not None)


async def _calls(store: Any, ctx: Ctx, n: int) -> None:
    """One of the store's calls: reads, writes, a page, a delete, a transaction."""
    kind = n % 6
    if kind == 0:
        await store.save_thread(thread(f"s{n % 50}"), ctx)
    elif kind == 1:
        await store.add_thread_item("t", item(f"m{n}", "t", n), ctx)
    elif kind == 2:
        await store.load_thread("t", ctx)
    elif kind == 3:
        await store.load_thread_items("t", None, 20, "asc", ctx)
    elif kind == 4:
        await store.delete_thread(f"s{(n + 25) % 50}", ctx)
    else:
        await store.load_threads(10, None, "desc", ctx)


async def _storm(store: Any, ctx: Ctx, seed: int) -> dict[str, int]:
    """CALLS calls, 24 at a time, each under a random timeout or cancelled from outside."""
    rng = random.Random(seed)
    outcome = {"ok": 0, "cancelled": 0, "error": 0}
    deadline = time.monotonic() + STORM_SECONDS
    semaphore = asyncio.Semaphore(24)

    async def one(n: int) -> None:
        async with semaphore:
            if time.monotonic() > deadline:
                return
            call = asyncio.ensure_future(_calls(store, ctx, n))
            try:
                if n % 3 == 0:  # a client disconnect: Task.cancel() at a random moment
                    await asyncio.sleep(rng.random() * 0.004)
                    call.cancel()
                    await call
                else:  # an asyncio timeout around the call
                    await asyncio.wait_for(call, timeout=rng.random() * 0.006)
                outcome["ok"] += 1
            except (asyncio.CancelledError, asyncio.TimeoutError):
                outcome["cancelled"] += 1
            except Exception:
                outcome["error"] += 1

    await asyncio.gather(*(one(n) for n in range(CALLS)))
    return outcome


async def _wait_until_returned(store: Any) -> int:
    """Checked-out connections once background returns settle (bounded: 200 polls, 50 ms apart)."""
    for _ in range(200):
        if _checked_out(store) == 0:
            return 0
        await asyncio.sleep(0.05)
    return _checked_out(store)


async def test_cancelled_calls_leak_no_pooled_connection(
    storm_flavour: Flavour, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    loop.set_exception_handler(lambda _loop, context: reports.append(str(context)))
    store = await _make(storm_flavour)
    ctx = Ctx(f"storm-{uuid.uuid4().hex}")
    try:
        await store.save_thread(thread("t"), ctx)
        cancelled = 0
        for storm in range(2):
            outcome = await _storm(store, ctx, seed=storm)
            cancelled += outcome["cancelled"]
            assert await _wait_until_returned(store) == 0, (storm, outcome)
        assert cancelled >= 100, cancelled  # the storms did cancel calls mid-way
        # The whole pool serves calls at once: POOL_SIZE transactions hold a connection each.
        assert await asyncio.gather(*(store.load_thread("t", ctx) for _ in range(POOL_SIZE * 4)))
        await store.save_thread(thread("after"), ctx)
        await store.add_thread_item("after", item("a1", "after"), ctx)
        assert (await store.load_item("after", "a1", ctx)).id == "a1"
        await store.delete_thread("after", ctx)
        with pytest.raises(NotFoundError):
            await store.load_thread("after", ctx)
        assert _checked_out(store) == 0
    finally:
        await store.close()
        gc.collect()
        await asyncio.sleep(0.05)
        loop.set_exception_handler(None)
    reports.extend(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert not reports, reports[:3]
