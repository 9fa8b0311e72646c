"""A concurrent writer's latency while `prune` deletes 100,000 items.

Bulk-loads old threads (1,000 threads x 100 items by default) straight into the tables, then
runs `store.prune(older_than=90 days)` while one writer keeps adding items to a live thread of
another owner through the same store. Prints the prune's duration and the writer's latency
before (baseline) and during the prune: batches are short statements, so the writer waits at
most about one batch. Stores: AsyncpgStore on PostgreSQL and SQLAlchemyStore on SQLite.

    python bench/retention.py [--threads 1000] [--items 100] [--batch-size 500] [--small]

Needs PostgreSQL at CHATKIT_KIT_TEST_POSTGRES_DSN (default postgresql://postgres@127.0.0.1:5432/
test); works in a fresh schema it drops at the end. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
from chatkit.types import (
    InferenceOptions,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)

from chatkit_kit.stores import _codec, _schema
from chatkit_kit.stores._rules import sort_key
from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore

DSN = os.environ.get("CHATKIT_KIT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
OLD = datetime.now(timezone.utc) - timedelta(days=400)
TEXT = "The quick brown fox jumps over the lazy dog. " * 4


@dataclass
class Ctx:
    user_id: str


def message(thread_id: str, item_id: str, at: datetime) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=at,
        content=[UserMessageTextContent(text=TEXT)],
        attachments=[],
        inference_options=InferenceOptions(),
    )


def rows(threads: int, items: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Thread and item rows of owner `old`: every item older than the retention period."""
    thread_rows, item_rows = [], []
    payload = _codec.encode_item(message("t", "m", OLD))
    for t in range(threads):
        thread = ThreadMetadata(id=f"thr_{t:06d}", created_at=OLD)
        thread_rows.append(("old", thread.id, sort_key(OLD), _codec.encode_thread(thread)))
        for n in range(items):
            item_rows.append(("old", thread.id, f"m{n:05d}", sort_key(OLD) + n, payload))
    return thread_rows, item_rows


async def load_postgres(dsn: str, names: _schema.Names, threads: int, items: int) -> None:
    thread_rows, item_rows = rows(threads, items)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            names.raw("threads"),
            schema_name=names.schema,
            columns=["owner", "id", "sort_key", "payload"],
            records=thread_rows,
        )
        await conn.copy_records_to_table(
            names.raw("thread_items"),
            schema_name=names.schema,
            columns=["owner", "thread_id", "id", "sort_key", "payload"],
            records=item_rows,
        )
        await conn.execute(f"ANALYZE {names.items}")
        await conn.execute(f"ANALYZE {names.threads}")
    finally:
        await conn.close()


def load_sqlite(path: Path, names: _schema.Names, threads: int, items: int) -> None:
    thread_rows, item_rows = rows(threads, items)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            f"INSERT INTO {names.threads} (owner, id, sort_key, payload) VALUES (?, ?, ?, ?)",
            thread_rows,
        )
        conn.executemany(
            f"INSERT INTO {names.items} (owner, thread_id, id, sort_key, payload) "
            "VALUES (?, ?, ?, ?, ?)",
            item_rows,
        )
        conn.execute("ANALYZE")


async def writer(store: Any, stop: asyncio.Event, samples: list[float], prefix: str) -> None:
    ctx = Ctx("live")
    n = 0
    while not stop.is_set():
        item = message("live", f"{prefix}{n:06d}", datetime.now(timezone.utc))
        started = time.perf_counter()
        await store.add_thread_item("live", item, ctx)
        samples.append((time.perf_counter() - started) * 1000)
        n += 1
        await asyncio.sleep(0.002)  # a steady writer, not a flood


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def bench(store: Any, title: str, seconds_baseline: float, batch_size: int) -> str:
    await store.save_thread(ThreadMetadata(id="live", created_at=datetime.now()), Ctx("live"))
    baseline: list[float] = []
    stop = asyncio.Event()
    task = asyncio.ensure_future(writer(store, stop, baseline, "b"))
    await asyncio.sleep(seconds_baseline)
    stop.set()
    await task

    during: list[float] = []
    stop = asyncio.Event()
    task = asyncio.ensure_future(writer(store, stop, during, "d"))
    started = time.perf_counter()
    try:
        pruned = await store.prune(timedelta(days=90), batch_size=batch_size)
    finally:
        stop.set()
        await task
    elapsed = time.perf_counter() - started
    left = (await store.load_threads(10, None, "asc", Ctx("old"))).data
    return (
        f"{title:<34} {pruned:>7} {elapsed:>8.1f} "
        f"{statistics.median(baseline):>9.2f} {pct(baseline, 0.99):>9.2f} "
        f"{statistics.median(during):>9.2f} {pct(during, 0.99):>9.2f} {max(during):>9.2f}"
        + ("" if not left else f"  ({len(left)}+ threads left!)")
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--items", type=int, default=100, help="items per thread")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args(argv)
    if args.small:
        args.threads, args.items = 20, 10
    baseline_seconds = 0.5 if args.small else 3.0
    total = args.threads * args.items
    header = (
        f"{'store':<34} {'threads':>7} {'prune s':>8} "
        f"{'base p50':>9} {'base p99':>9} {'prune p50':>9} {'prune p99':>9} {'max':>9}"
    )
    lines = [
        f"prune of {args.threads} threads x {args.items} items = {total} items "
        f"(batch size {args.batch_size}); concurrent writer latency in ms",
        header,
        "-" * len(header),
    ]

    names = _schema.Names.create("postgresql", f"ckret_{uuid.uuid4().hex[:8]}", "chatkit_")
    try:
        store: Any = await AsyncpgStore.connect(
            args.dsn, schema=names.schema, min_size=2, max_size=4
        )
        async with store:
            await store.migrate()
            await load_postgres(args.dsn, names, args.threads, args.items)
            lines.append(
                await bench(store, "AsyncpgStore, PostgreSQL", baseline_seconds, args.batch_size)
            )
    finally:
        conn = await asyncpg.connect(args.dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{names.schema}" CASCADE')
        finally:
            await conn.close()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "retention.db"
        store = SQLAlchemyStore.from_url(f"sqlite+aiosqlite:///{path}")
        async with store:
            await store.migrate()
            sqlite_names = _schema.Names.create("sqlite", None, "chatkit_")
            await asyncio.to_thread(load_sqlite, path, sqlite_names, args.threads, args.items)
            lines.append(
                await bench(store, "SQLAlchemyStore, SQLite", baseline_seconds, args.batch_size)
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
