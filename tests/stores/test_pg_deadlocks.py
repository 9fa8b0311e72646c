"""A real PostgreSQL deadlock on every PostgreSQL store: the victim is a `DeadlockError`, which
the store runs again (the database rolled the call back whole)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from chatkit.store import NotFoundError
from chatkit.types import ThreadMetadata

from chatkit_kit.errors import DeadlockError
from chatkit_kit.stores.sql.dialects import PostgreSQLDialect
from tests.fixtures.context import Ctx

from .sql_support import Flavour, admin_execute
from .test_sql_stores import T0, user_message


async def _wait_for_lock_wait(dsn: str, call: asyncio.Future[Any]) -> None:
    """Poll until a backend waits for a lock; fails at once if the store's `call` ended."""
    for _ in range(1500):
        if call.done():
            raise AssertionError(f"the store's call ended without waiting: {call.exception()!r}")
        waiting = await asyncio.to_thread(
            admin_execute, dsn, "SELECT count(*) FROM pg_locks WHERE NOT granted"
        )
        if waiting[0][0]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the store's transaction never waited for the lock")


async def _deadlock_delete_thread(flavour: Flavour) -> tuple[Any, asyncio.Future[None]]:
    """Start a store's `delete_thread` that deadlocks with another connection.

    The two lock two rows in opposite order: the store's delete holds the thread row and waits
    for an item row the other connection holds, which then asks for the thread row. The
    store's deadlock check runs first (deadlock_timeout 50 ms against 10 s), so PostgreSQL
    picks the store's transaction as the victim.
    """
    assert flavour.dsn is not None
    ctx_owner = f"{uuid.uuid4().hex}:alice"
    store = await flavour.make(owner=lambda ctx: ctx_owner, settings={"deadlock_timeout": "50ms"})
    ctx = Ctx("alice")
    await store.save_thread(ThreadMetadata(id="victim", created_at=T0), ctx)
    await store.add_thread_item("victim", user_message("m0", T0), ctx)
    names = store._names
    other = await asyncpg.connect(flavour.dsn, server_settings={"deadlock_timeout": "10s"})
    transaction = other.transaction()
    await transaction.start()
    await other.execute(
        f"SELECT 1 FROM {names.items} WHERE owner = $1 AND thread_id = 'victim' FOR UPDATE",
        ctx_owner,
    )
    deleting = asyncio.ensure_future(store.delete_thread("victim", ctx))
    await _wait_for_lock_wait(flavour.dsn, deleting)
    await other.execute(
        f"SELECT 1 FROM {names.threads} WHERE owner = $1 AND id = 'victim' FOR UPDATE",
        ctx_owner,
    )
    await transaction.commit()
    await other.close()
    return store, deleting


async def test_a_deadlock_victim_is_a_deadlock_error(
    direct_pg_flavour: Flavour, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PostgreSQLDialect, "retries", {})  # see the victim's error itself
    store, deleting = await _deadlock_delete_thread(direct_pg_flavour)
    try:
        with pytest.raises(DeadlockError) as caught:
            await asyncio.wait_for(deleting, 30)
        assert caught.value.code == "40P01" and caught.value.retryable
        assert (await store.load_thread("victim", Ctx("alice"))).id == "victim"  # rolled back
    finally:
        await store.close()


async def test_a_deadlock_victim_is_run_again_inside_the_store(
    direct_pg_flavour: Flavour,
) -> None:
    store, deleting = await _deadlock_delete_thread(direct_pg_flavour)
    try:
        await asyncio.wait_for(deleting, 30)  # the retry ran once the other side committed
        with pytest.raises(NotFoundError):
            await store.load_thread("victim", Ctx("alice"))
    finally:
        await store.close()
