"""prune() racing an item write never deletes a thread holding an item, on every SQL flavour.

The item write is held open inside its transaction (it holds the thread row's lock, as every
item write does until it commits) while `prune` reaches the thread; then it commits. Before the
fix PostgreSQL's READ COMMITTED delete of "empty" threads waited for that lock and then deleted
the thread without re-checking, leaving an orphan item that `load_item` still found.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from chatkit.types import AssistantMessageContent, AssistantMessageItem

from chatkit_kit.stores import _codec
from chatkit_kit.stores._rules import sort_key
from tests.fixtures.context import Ctx

from .sql_support import Flavour, admin_execute
from .test_cancellation import storm_flavour  # noqa: F401  (the fixture: every flavour)
from .test_sql_faults import thread

LOCK_WAIT_POLLS = 200
"""How often (50 ms apart) the test looks for prune waiting on the held write's lock."""


def fresh_item(item_id: str, thread_id: str) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=datetime.now(timezone.utc),
        content=[AssistantMessageContent(text="new")],
    )


async def _prune_is_waiting(flavour: Flavour, prune: asyncio.Future[Any]) -> None:
    """Until prune waits for a lock (PostgreSQL: pg_stat_activity; elsewhere: still running)."""
    for _ in range(LOCK_WAIT_POLLS):
        await asyncio.sleep(0.05)
        assert not prune.done(), "prune finished while the item write held the thread's lock"
        if not flavour.is_postgres:
            if _ >= 6:  # MariaDB and SQLite: 0.3 s of prune blocked on the held write
                return
            continue
        # Any statement of this test's schema waiting for a lock: the prune's row lock on the
        # thread (SELECT ... FOR UPDATE) or, before that lock existed, its DELETE.
        waiting = await asyncio.to_thread(
            admin_execute,
            flavour.admin,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid() AND position(%s in query) > 0",
            (f'"{flavour.schema}".',),
        )
        if waiting[0][0]:
            return
    raise AssertionError("prune never waited for the lock of the held item write")


async def test_prune_never_deletes_a_thread_holding_an_item(
    storm_flavour: Flavour,  # noqa: F811
) -> None:
    store = await storm_flavour.make(pool_size=4)
    ctx = Ctx(f"prune-race-{uuid.uuid4().hex}")
    owner = store.owner_key(ctx)
    try:
        await store.save_thread(thread("t"), ctx)  # created 2026-01-02: stale, no items
        item = fresh_item("i", "t")
        params = {
            "owner": owner,
            "thread_id": "t",
            "id": "i",
            "sort_key": sort_key(item.created_at),
            "payload": _codec.encode_item(item),
        }
        async with store._connection(transaction=True) as conn:
            sql = store._sql.upsert_item
            if not store._dialect.returning:  # MySQL: the affected-row count
                assert await conn.execute_count(sql, params) > 0
            else:
                assert await conn.fetch_value(sql, params) is not None
            prune = asyncio.ensure_future(store.prune(timedelta(days=1), owner))
            await _prune_is_waiting(storm_flavour, prune)
        pruned = await prune
        assert pruned == 0
        assert (await store.load_thread("t", ctx)).id == "t"
        assert (await store.load_item("t", "i", ctx)).id == "i"
        page = await store.load_thread_items("t", None, 10, "asc", ctx)
        assert [i.id for i in page.data] == ["i"]
    finally:
        await store.close()
