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

ATTEMPTS = 5
"""Scenarios tried until PostgreSQL picks the store's transaction as the victim (see below)."""


async def _wait_for_lock_wait(dsn: str, schema: str, call: asyncio.Future[Any]) -> None:
    """Poll until a statement on `schema` waits for a lock; fails at once if `call` ended."""
    for _ in range(1500):
        if call.done():
            raise AssertionError(f"the store's call ended without waiting: {call.exception()!r}")
        waiting = await asyncio.to_thread(
            admin_execute,
            dsn,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid() AND position(%s in query) > 0",
            (f'"{schema}".',),
        )
        if waiting[0][0]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the store's transaction never waited for the lock")


async def _deadlock_delete_thread(flavour: Flavour) -> tuple[Any, asyncio.Future[None]]:
    """Start a store's `delete_thread` that deadlocks with another connection.

    The two lock two rows in opposite order: the store's delete holds the thread row and waits
    for an item row the other connection holds, which then asks for the thread row. PostgreSQL
    checks a waiting backend for a deadlock once, `deadlock_timeout` after it began to wait:
    the store's backend checks after 1 s, the other's after 60 s, so the store's transaction is
    the victim when the other's request comes within that second. On a machine so busy that it
    does not, the other connection is the victim instead; the scenario then runs again (counted,
    at most ATTEMPTS times), so the outcome never depends on the machine's speed.
    """
    assert flavour.dsn is not None and flavour.schema is not None
    ctx_owner = f"{uuid.uuid4().hex}:alice"
    store = await flavour.make(owner=lambda ctx: ctx_owner, settings={"deadlock_timeout": "1s"})
    ctx = Ctx("alice")
    names = store._names
    try:
        for _ in range(ATTEMPTS):
            await store.save_thread(ThreadMetadata(id="victim", created_at=T0), ctx)
            await store.add_thread_item("victim", user_message("m0", T0), ctx)
            other = await asyncpg.connect(flavour.dsn, server_settings={"deadlock_timeout": "60s"})
            try:
                transaction = other.transaction()
                await transaction.start()
                await other.execute(
                    f"SELECT 1 FROM {names.items} WHERE owner = $1 AND thread_id = 'victim' "
                    "FOR UPDATE",
                    ctx_owner,
                )
                deleting = asyncio.ensure_future(store.delete_thread("victim", ctx))
                await _wait_for_lock_wait(flavour.dsn, flavour.schema, deleting)
                try:
                    await other.execute(
                        f"SELECT 1 FROM {names.threads} WHERE owner = $1 AND id = 'victim' "
                        "FOR UPDATE",
                        ctx_owner,
                    )
                except asyncpg.DeadlockDetectedError:  # the other side was the victim
                    await transaction.rollback()
                    await asyncio.wait_for(deleting, 30)  # went on; try again
                    continue
                await transaction.commit()
            finally:
                await other.close()
            return store, deleting
        raise AssertionError(f"the store's transaction was never the victim in {ATTEMPTS} tries")
    except BaseException:
        await store.close()
        raise


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
