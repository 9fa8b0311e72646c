"""The PostgreSQL stores through PgBouncer in transaction pooling mode, under concurrency.

PgBouncer hands each transaction to whichever server connection is free, so a prepared statement
made in one call is usually gone (or another client's) in the next. With `pgbouncer=True` every
flavour must keep working while many calls interleave over a small server pool; the conformance
suite and the connection-loss test also run through PgBouncer (test_sql_conformance.py,
test_sql_connection.py).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from chatkit.types import InferenceOptions, ThreadMetadata, UserMessageItem, UserMessageTextContent

from .sql_support import PGBOUNCER_FLAVOURS, Flavour

WRITERS = 12
ROUNDS = 15


def _message(thread_id: str, n: int, at: datetime) -> UserMessageItem:
    return UserMessageItem(
        id=f"m{n:03d}",
        thread_id=thread_id,
        created_at=at + timedelta(seconds=n),
        content=[UserMessageTextContent(text=f"message {n}")],
        attachments=[],
        inference_options=InferenceOptions(),
    )


@pytest.mark.parametrize("name", PGBOUNCER_FLAVOURS)
async def test_interleaved_calls_through_pgbouncer(
    name: str, pgbouncer_dsn: str, pg_schema: str
) -> None:
    flavour = Flavour(name, pgbouncer_dsn, schema=pg_schema)
    namespace = uuid.uuid4().hex[:8]
    store: Any = await flavour.make(owner=lambda ctx: f"{namespace}:{ctx['user_id']}")
    start = datetime(2026, 1, 1)
    try:

        async def writer(w: int) -> None:
            ctx = {"user_id": f"u{w}"}
            thread = ThreadMetadata(id=f"t{w}", created_at=start)
            await store.save_thread(thread, ctx)
            for n in range(ROUNDS):
                await store.add_thread_item(thread.id, _message(thread.id, n, start), ctx)
                page = await store.load_thread_items(thread.id, None, 5, "desc", ctx)
                assert page.data[0].id == f"m{n:03d}"
                assert (await store.load_threads(5, None, "desc", ctx)).data == [thread]

        await asyncio.gather(*(writer(w) for w in range(WRITERS)))

        for w in range(WRITERS):
            items = await store.load_thread_items(f"t{w}", None, 100, "asc", {"user_id": f"u{w}"})
            assert [i.id for i in items.data] == [f"m{n:03d}" for n in range(ROUNDS)]
    finally:
        await store.close()


@pytest.mark.parametrize("driver", ["postgresql", "postgresql+psycopg"])
def test_cli_commands_run_again_and_again_through_pgbouncer(
    pgbouncer_dsn: str, postgres_dsn: str, driver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """migrate, prune and erase-owner with --pgbouncer, each three times in a row (before, a
    later run of an AsyncpgStore command could meet the prepared statements of an earlier one on
    PgBouncer's server connection: DuplicatePreparedStatementError)."""
    from chatkit_kit.cli import main

    from .sql_support import fresh_schema

    url = pgbouncer_dsn.replace("postgresql://", f"{driver}://", 1)
    with fresh_schema(postgres_dsn) as schema:
        common = ["--schema", schema, "--pgbouncer"]
        for _ in range(3):
            assert main(["migrate", url, *common]) == 0
            assert main(["prune", url, *common, "--older-than", "90d"]) == 0
            assert main(["erase-owner", url, *common, "nobody"]) == 0
        out = capsys.readouterr().out
        assert out.count("schema is up to date") == 2
