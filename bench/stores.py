"""Latency and CPU per call of every SQL store operation, beside hand-written SQL on the same pool.

Run with `nox -s bench` (or `python bench/stores.py`). Needs PostgreSQL at
CHATKIT_KIT_TEST_POSTGRES_DSN (default postgresql://postgres@127.0.0.1:5432/test) for the
PostgreSQL stores and MariaDB/MySQL at CHATKIT_KIT_TEST_MYSQL_URL (default
mysql://root@127.0.0.1:3306/test) for the MySQL store; works in a fresh schema and a fresh
database it drops at the end. `--small` uses tiny sizes
(the test suite runs it that way to know the script works). Prints one table per store and
the target ratios; it never asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import aiosqlite
import asyncpg
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    InferenceOptions,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)

from chatkit_kit.encryption import EncryptedStore, EnvelopeCodec, LocalKeyProvider
from chatkit_kit.stores import _codec, _schema
from chatkit_kit.stores._rules import sort_key
from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore

DSN = os.environ.get("CHATKIT_KIT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("CHATKIT_KIT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
T0 = datetime(2026, 1, 1, 12, 0, 0)
TEXT = "The quick brown fox jumps over the lazy dog. " * 4


@dataclass
class Ctx:
    user_id: str


@dataclass
class Sizes:
    item_threads: tuple[int, ...]
    owner_threads: tuple[int, ...]
    iterations: int
    warmup: int


FULL = Sizes(
    item_threads=(100, 10_000, 100_000), owner_threads=(10, 10_000), iterations=300, warmup=30
)
SMALL = Sizes(item_threads=(100, 1_000), owner_threads=(10, 100), iterations=5, warmup=2)


def user_item(item_id: str, thread_id: str, n: int) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=T0 + timedelta(milliseconds=n),
        content=[UserMessageTextContent(text=f"{n}: {TEXT}")],
        inference_options=InferenceOptions(),
    )


def assistant_item(item_id: str, thread_id: str, n: int) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=T0 + timedelta(milliseconds=n),
        content=[AssistantMessageContent(text=f"{n}: {TEXT}")],
    )


def item_row(owner: str, thread_id: str, n: int) -> tuple[str, str, str, int, str]:
    make = user_item if n % 2 == 0 else assistant_item
    item = make(f"msg_{n:06d}", thread_id, n)
    return (owner, thread_id, item.id, sort_key(item.created_at), _codec.encode_item(item))


def thread_row(owner: str, n: int) -> tuple[str, str, int, str]:
    thread = ThreadMetadata(id=f"thr_{n:06d}", created_at=T0 + timedelta(seconds=n), title=TEXT)
    return (owner, thread.id, sort_key(thread.created_at), _codec.encode_thread(thread))


@dataclass
class Dataset:
    """Owners and ids that the bulk load created."""

    item_threads: dict[int, tuple[str, str]] = field(default_factory=dict)  # size -> owner, thread
    owners: dict[int, str] = field(default_factory=dict)  # thread count -> owner
    cursor_depth: int = 50


async def bulk_load_postgres(dsn: str, names: _schema.Names, sizes: Sizes) -> Dataset:
    """COPY the big threads and owners straight into the tables (not through the store)."""
    data = Dataset()
    conn = await asyncpg.connect(dsn)
    try:
        for size in sizes.item_threads:
            owner, thread_id = f"items-{size}", f"thr_items_{size}"
            rows = [item_row(owner, thread_id, n) for n in range(size)]
            await conn.copy_records_to_table(
                names.raw("thread_items"),
                schema_name=names.schema,
                columns=["owner", "thread_id", "id", "sort_key", "payload"],
                records=rows,
            )
            data.item_threads[size] = (owner, thread_id)
        for count in sizes.owner_threads:
            owner = f"threads-{count}"
            await conn.copy_records_to_table(
                names.raw("threads"),
                schema_name=names.schema,
                columns=["owner", "id", "sort_key", "payload"],
                records=[thread_row(owner, n) for n in range(count)],
            )
            data.owners[count] = owner
        await conn.execute(f"ANALYZE {names.items}")
        await conn.execute(f"ANALYZE {names.threads}")
    finally:
        await conn.close()
    return data


async def _mysql_connect(url: str, database: str | None) -> Any:
    import asyncmy

    parts = urlsplit(url)
    return await asyncmy.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database,
        charset="utf8mb4",
        autocommit=True,
    )


async def mysql_admin(url: str, sql: str) -> None:
    conn = await _mysql_connect(url, None)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
    finally:
        conn.close()


async def bulk_load_mysql(url: str, names: _schema.Names, sizes: Sizes) -> Dataset:
    """Multi-row INSERTs straight into the tables (not through the store)."""
    data = Dataset()
    conn = await _mysql_connect(url, urlsplit(url).path.lstrip("/"))
    try:
        async with conn.cursor() as cur:
            for size in sizes.item_threads:
                owner, thread_id = f"items-{size}", f"thr_items_{size}"
                for start in range(0, size, 2000):
                    await cur.executemany(
                        f"INSERT INTO {names.items} (owner, thread_id, id, sort_key, payload) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        [
                            item_row(owner, thread_id, n)
                            for n in range(start, min(size, start + 2000))
                        ],
                    )
                data.item_threads[size] = (owner, thread_id)
            for count in sizes.owner_threads:
                owner = f"threads-{count}"
                await cur.executemany(
                    f"INSERT INTO {names.threads} (owner, id, sort_key, payload) "
                    "VALUES (%s, %s, %s, %s)",
                    [thread_row(owner, n) for n in range(count)],
                )
                data.owners[count] = owner
            await cur.execute(f"ANALYZE TABLE {names.items}, {names.threads}")
            await cur.fetchall()
    finally:
        conn.close()
    return data


def bulk_load_sqlite(path: Path, names: _schema.Names, sizes: Sizes) -> Dataset:
    import sqlite3
    from contextlib import closing

    data = Dataset()
    with closing(sqlite3.connect(path)) as conn, conn:
        for size in sizes.item_threads:
            owner, thread_id = f"items-{size}", f"thr_items_{size}"
            conn.executemany(
                f"INSERT INTO {names.items} (owner, thread_id, id, sort_key, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                (item_row(owner, thread_id, n) for n in range(size)),
            )
            data.item_threads[size] = (owner, thread_id)
        for count in sizes.owner_threads:
            owner = f"threads-{count}"
            conn.executemany(
                f"INSERT INTO {names.threads} (owner, id, sort_key, payload) VALUES (?, ?, ?, ?)",
                (thread_row(owner, n) for n in range(count)),
            )
            data.owners[count] = owner
        conn.execute("ANALYZE")
    return data


Timed = Callable[[int], Awaitable[Any]]


@dataclass
class Result:
    name: str
    median_us: float
    p95_us: float
    cpu_us: float = 0.0
    """Median CPU time of this process per call (time.process_time: the event loop's thread
    and the driver's, e.g. aiosqlite's); unlike wall time, barely touched by other load."""


async def measure(name: str, op: Timed, sizes: Sizes) -> Result:
    for i in range(sizes.warmup):
        await op(-1 - i)
    samples = []
    cpu: list[float] = []
    for i in range(sizes.iterations):
        start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
        await op(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
        cpu.append((time.process_time_ns() - start_cpu) / 1000)
    return summarize(name, samples, cpu)


def summarize(name: str, samples: list[float], cpu: list[float]) -> Result:
    """Median and p95 of latency samples, and median CPU, in microseconds."""
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return Result(name, statistics.median(samples), p95, statistics.median(cpu))


def decode_rows(sql: str, rows: Any) -> Any:
    """What a store does with the rows of a floor SELECT: parse the payloads into models."""
    if not rows or not sql.lstrip().startswith("SELECT"):
        return rows
    payloads = [row[-1] for row in rows]
    if "_items" in sql:
        return _codec.decode_items(payloads)
    if "_attachments" in sql:
        return [_codec.decode_attachment(p) for p in payloads]
    return _codec.decode_threads(payloads)


class Floor:
    """The same reads and writes as single hand-written SQL statements, on the store's pool."""

    def __init__(self, store: Any, names: _schema.Names) -> None:
        self.names = names
        if isinstance(store, AsyncpgStore):
            pool = store.pool

            # The hand-written statement plus the pydantic decode of its rows: the floor the
            # AsyncpgStore targets (within 1.5x, in CPU and in wall time) are measured against.
            # delete_thread by hand as correctness needs it under concurrent item writes: the
            # thread row, then its items with a fresh snapshot, in one transaction (one
            # statement would miss items committed while it waited for the thread row).
            async def fetch(sql: str, *args: Any) -> Any:
                both = re.fullmatch(r"WITH gone AS \((DELETE .*?)\) (DELETE .*)", sql)
                if both:
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute(both.group(2), *args)
                        await conn.execute(both.group(1), *args)
                    return []
                return decode_rows(sql, await pool.fetch(sql, *args))

        elif store.engine.dialect.name == "sqlite":
            # Raw aiosqlite on its own autocommit connection to the same file, plus the decode
            # a store does: the floor the SQLite target (within 3x) is measured against.
            path = store.engine.url.database
            raw_conn: list[Any] = []

            async def fetch(sql: str, *args: Any) -> Any:
                if not raw_conn:
                    raw_conn.append(await aiosqlite.connect(path, isolation_level=None))
                query = re.sub(r"\$(\d+)", r"?\1", sql)
                both = re.fullmatch(r"WITH gone AS \((DELETE .*?)\) (DELETE .*)", query)
                if both:  # SQLite has no DML in WITH: both deletes in one transaction
                    conn = raw_conn[0]
                    await conn.execute_fetchall("BEGIN IMMEDIATE")
                    for part in both.groups():
                        await conn.execute_fetchall(part, args)
                    await conn.execute_fetchall("COMMIT")
                    return []
                return decode_rows(query, await raw_conn[0].execute_fetchall(query, args))

            self.close = lambda: raw_conn[0].close() if raw_conn else asyncio.sleep(0)

        else:
            # Autocommit like the store: MySQL engines from `from_url` are autocommit already.
            engine = (
                store.engine
                if names.dialect.name == "mysql"
                else store.engine.execution_options(isolation_level="AUTOCOMMIT")
            )
            driver = store.engine.dialect.driver

            async def fetch(sql: str, *args: Any) -> Any:
                async with engine.connect() as conn:
                    raw = (await conn.get_raw_connection()).driver_connection
                    if driver == "asyncpg":
                        return await raw.fetch(sql, *args)
                    query = sql
                    for n in range(len(args), 0, -1):
                        query = query.replace(f"${n}", f"%(p{n})s")
                    params = {f"p{n + 1}": a for n, a in enumerate(args)}
                    if names.dialect.name == "mysql":
                        async with raw.cursor() as cursor:
                            await cursor.execute(query, params)
                            return await cursor.fetchall() if cursor.description else None
                    cursor = await raw.execute(query, params)
                    return await cursor.fetchall() if cursor.description else None

        self.fetch = fetch

    def sql(self, template: str) -> str:
        if self.names.dialect.name == "mysql":
            if template in MYSQL_FLOOR:
                template = MYSQL_FLOOR[template]
            elif any(pg in template for pg in ("ON CONFLICT", "WITH ", "(sort_key, seq)")):
                raise KeyError(f"no MySQL floor statement for {template!r}")
        return self.names.format(template)


# The floor's statements as one would write them by hand for MySQL (keyed by the PostgreSQL
# text in bench_store). The cursor pages look the cursor row up in a subquery, like the
# PostgreSQL floor; delete_thread is one multi-table DELETE (the thread's row and its items).
MYSQL_FLOOR = {
    "INSERT INTO {threads} (owner, id, sort_key, payload) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (owner, id) DO UPDATE SET payload = excluded.payload": (
        "INSERT INTO {threads} (owner, id, sort_key, payload) VALUES ($1, $2, $3, $4) "
        "ON DUPLICATE KEY UPDATE payload = VALUES(payload)"
    ),
    "INSERT INTO {items} (owner, thread_id, id, sort_key, payload) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (owner, thread_id, id) DO UPDATE SET payload = excluded.payload": (
        "INSERT INTO {items} (owner, thread_id, id, sort_key, payload) "
        "VALUES ($1, $2, $3, $4, $5) ON DUPLICATE KEY UPDATE payload = VALUES(payload)"
    ),
    "WITH gone AS (DELETE FROM {items} WHERE owner = $1 AND thread_id = $2) "
    "DELETE FROM {threads} WHERE owner = $1 AND id = $2": (
        "DELETE t, i FROM {threads} t LEFT JOIN {items} i ON i.owner = t.owner "
        "AND i.thread_id = t.id WHERE t.owner = $1 AND t.id = $2"
    ),
    "INSERT INTO {attachments} (owner, id, thread_id, payload) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (owner, id) DO UPDATE SET thread_id = excluded.thread_id, "
    "payload = excluded.payload, updated_at = CURRENT_TIMESTAMP": (
        "INSERT INTO {attachments} (owner, id, thread_id, payload, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) "
        "ON DUPLICATE KEY UPDATE thread_id = VALUES(thread_id), payload = VALUES(payload), "
        "updated_at = UTC_TIMESTAMP(6)"
    ),
    "SELECT id, payload FROM {items} WHERE owner = $1 AND thread_id = $2 "
    "AND (sort_key, seq) < (SELECT sort_key, seq FROM {items} "
    "WHERE owner = $1 AND thread_id = $2 AND id = $3) "
    "ORDER BY sort_key DESC, seq DESC LIMIT $4": (
        "SELECT t.id, t.payload FROM {items} t FORCE INDEX ({items_page_idx}) "
        "JOIN {items} c ON c.owner = $1 AND c.thread_id = $2 AND c.id = $3 "
        "WHERE t.owner = $1 AND t.thread_id = $2 AND (t.sort_key < c.sort_key "
        "OR (t.sort_key = c.sort_key AND t.seq < c.seq)) "
        "ORDER BY t.sort_key DESC, t.seq DESC LIMIT $4"
    ),
    "SELECT id, payload FROM {threads} WHERE owner = $1 AND (sort_key, seq) < "
    "(SELECT sort_key, seq FROM {threads} WHERE owner = $1 AND id = $2) "
    "ORDER BY sort_key DESC, seq DESC LIMIT $3": (
        "SELECT t.id, t.payload FROM {threads} t FORCE INDEX ({threads_page_idx}) "
        "JOIN {threads} c ON c.owner = $1 AND c.id = $2 "
        "WHERE t.owner = $1 AND (t.sort_key < c.sort_key "
        "OR (t.sort_key = c.sort_key AND t.seq < c.seq)) "
        "ORDER BY t.sort_key DESC, t.seq DESC LIMIT $3"
    ),
}


def table(title: str, rows: list[tuple[str, Result, Result | None, Result | None]]) -> str:
    header = f"{'operation':<44} {'median µs':>10} {'p95 µs':>10} {'CPU µs':>8}"
    has_floor = any(floor for _, _, floor, _ in rows)
    has_ref = any(ref for _, _, _, ref in rows)
    if has_floor:
        header += f" {'floor µs':>10} {'x floor':>8} {'CPU x floor':>11}"
    if has_ref:
        header += f" {'asyncpg µs':>11} {'x asyncpg':>9} {'CPU x asyncpg':>13}"
    lines = [title, header, "-" * len(header)]
    for name, result, floor, ref in rows:
        line = f"{name:<44} {result.median_us:>10.0f} {result.p95_us:>10.0f} {result.cpu_us:>8.0f}"
        if has_floor:
            line += (
                f" {floor.median_us:>10.0f} {result.median_us / floor.median_us:>8.2f}"
                f" {_ratio(result.cpu_us, floor.cpu_us):>11}"
                if floor
                else f" {'':>10} {'':>8} {'':>11}"
            )
        if has_ref:
            line += (
                f" {ref.median_us:>11.0f} {result.median_us / ref.median_us:>9.2f}"
                f" {_ratio(result.cpu_us, ref.cpu_us):>13}"
                if ref
                else f" {'':>11} {'':>9} {'':>13}"
            )
        lines.append(line)
    return "\n".join(lines)


def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}" if reference else "-"


async def bench_store(
    store: Any, names: _schema.Names, data: Dataset, sizes: Sizes, with_floor: bool
) -> dict[str, tuple[Result, Result | None]]:
    """Every operation of `store`; returns name -> (store result, floor result or None)."""
    floor = Floor(store, names) if with_floor else None
    try:
        return await _bench_operations(store, data, sizes, floor)
    finally:
        # Also after a failure: the SQLite floor's aiosqlite thread would keep the process alive.
        if floor is not None and hasattr(floor, "close"):
            await floor.close()


async def _bench_operations(
    store: Any, data: Dataset, sizes: Sizes, floor: Floor | None
) -> dict[str, tuple[Result, Result | None]]:
    run = uuid.uuid4().hex[:6]
    ctx = Ctx(f"ops-{run}")
    owner = ctx.user_id
    results: dict[str, tuple[Result, Result | None]] = {}

    async def both(name: str, op: Timed, floor_op: Timed | None) -> None:
        if not (floor and floor_op):
            results[name] = (await measure(name, op, sizes), None)
            return
        # Interleave store and floor samples, so that load from elsewhere hits both alike.
        for i in range(sizes.warmup):
            await op(-1 - i)
            await floor_op(-1 - i)
        store_samples: list[float] = []
        floor_samples: list[float] = []
        store_cpu: list[float] = []
        floor_cpu: list[float] = []
        for i in range(sizes.iterations):
            for timed, samples, cpu in (
                (op, store_samples, store_cpu),
                (floor_op, floor_samples, floor_cpu),
            ):
                start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
                await timed(i)
                samples.append((time.perf_counter_ns() - start) / 1000)
                cpu.append((time.process_time_ns() - start_cpu) / 1000)
        results[name] = (
            summarize(name, store_samples, store_cpu),
            summarize(name, floor_samples, floor_cpu),
        )

    f = floor
    threads_sql = "SELECT payload FROM {threads} WHERE owner = $1 AND id = $2"
    # Fixtures for single-row operations.
    await store.save_thread(ThreadMetadata(id="thr_ops", created_at=T0, title=TEXT), ctx)
    # Item writes need a saved thread (the stores refuse writes into a thread without a row).
    await store.save_thread(ThreadMetadata(id="thr_add", created_at=T0), ctx)
    await store.add_thread_item("thr_ops", user_item("msg_ops", "thr_ops", 0), ctx)
    attachment = FileAttachment(id="atc_ops", name="report.pdf", mime_type="application/pdf")
    await store.save_attachment(attachment, ctx)

    await both(
        "load_thread",
        lambda i: store.load_thread("thr_ops", ctx),
        f and (lambda i: f.fetch(f.sql(threads_sql), owner, "thr_ops")),
    )
    saved = ThreadMetadata(id="thr_ops", created_at=T0, title="renamed")
    upsert_thread = (
        "INSERT INTO {threads} (owner, id, sort_key, payload) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (owner, id) DO UPDATE SET payload = excluded.payload"
    )
    await both(
        "save_thread (update)",
        lambda i: store.save_thread(saved, ctx),
        f
        and (lambda i: f.fetch(f.sql(upsert_thread), owner, "thr_ops", 0, saved.model_dump_json())),
    )
    new_threads = {
        i: ThreadMetadata(id=f"thr_new_{i}", created_at=T0 + timedelta(seconds=i))
        for i in range(-sizes.warmup, sizes.iterations)
    }
    await both(
        "save_thread (new)",
        lambda i: store.save_thread(new_threads[i], ctx),
        f
        and (
            lambda i: f.fetch(
                f.sql(upsert_thread), owner, f"thr_newf_{i}", i, new_threads[i].model_dump_json()
            )
        ),
    )
    item_sql = "SELECT payload FROM {items} WHERE owner = $1 AND thread_id = $2 AND id = $3"
    await both(
        "load_item",
        lambda i: store.load_item("thr_ops", "msg_ops", ctx),
        f and (lambda i: f.fetch(f.sql(item_sql), owner, "thr_ops", "msg_ops")),
    )
    upsert_item = (
        "INSERT INTO {items} (owner, thread_id, id, sort_key, payload) "
        "VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (owner, thread_id, id) DO UPDATE SET payload = excluded.payload"
    )
    replaced = assistant_item("msg_ops", "thr_ops", 0)
    await both(
        "save_item (replace)",
        lambda i: store.save_item("thr_ops", replaced, ctx),
        f
        and (
            lambda i: f.fetch(
                f.sql(upsert_item), owner, "thr_ops", "msg_ops", 0, replaced.model_dump_json()
            )
        ),
    )
    new_items = {
        i: user_item(f"msg_add_{i}", "thr_add", i) for i in range(-sizes.warmup, sizes.iterations)
    }
    await both(
        "add_thread_item (new)",
        lambda i: store.add_thread_item("thr_add", new_items[i], ctx),
        f
        and (
            lambda i: f.fetch(
                f.sql(upsert_item), owner, "thr_addf", f"msg_{i}", i, new_items[i].model_dump_json()
            )
        ),
    )
    delete_item = "DELETE FROM {items} WHERE owner = $1 AND thread_id = $2 AND id = $3"
    await both(
        "delete_thread_item",
        lambda i: store.delete_thread_item("thr_add", f"msg_add_{i}", ctx),
        f and (lambda i: f.fetch(f.sql(delete_item), owner, "thr_addf", f"msg_{i}")),
    )
    # delete_thread: threads of 5 items each, created untimed.
    prefixes = ["thr_del_", "thr_delf_"] if f else ["thr_del_"]
    for i in range(-sizes.warmup, sizes.iterations):
        for prefix in prefixes:
            tid = f"{prefix}{i}"
            await store.save_thread(ThreadMetadata(id=tid, created_at=T0), ctx)
            for n in range(5):
                await store.add_thread_item(tid, user_item(f"m{n}", tid, n), ctx)
    delete_thread = (
        "WITH gone AS (DELETE FROM {items} WHERE owner = $1 AND thread_id = $2) "
        "DELETE FROM {threads} WHERE owner = $1 AND id = $2"
    )
    await both(
        "delete_thread (5 items)",
        lambda i: store.delete_thread(f"thr_del_{i}", ctx),
        f and (lambda i: f.fetch(f.sql(delete_thread), owner, f"thr_delf_{i}")),
    )
    attachment_sql = "SELECT payload FROM {attachments} WHERE owner = $1 AND id = $2"
    await both(
        "load_attachment",
        lambda i: store.load_attachment("atc_ops", ctx),
        f and (lambda i: f.fetch(f.sql(attachment_sql), owner, "atc_ops")),
    )
    upsert_attachment = (
        "INSERT INTO {attachments} (owner, id, thread_id, payload) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (owner, id) DO UPDATE SET thread_id = excluded.thread_id, "
        "payload = excluded.payload, updated_at = CURRENT_TIMESTAMP"
    )
    new_attachments = {
        i: attachment.model_copy(update={"id": f"atc_{i}"})
        for i in range(-sizes.warmup, sizes.iterations)
    }
    await both(
        "save_attachment",
        lambda i: store.save_attachment(new_attachments[i], ctx),
        f
        and (
            lambda i: f.fetch(
                f.sql(upsert_attachment),
                owner,
                f"atcf_{i}",
                None,
                new_attachments[i].model_dump_json(),
            )
        ),
    )
    await both(
        "delete_attachment",
        lambda i: store.delete_attachment(f"atc_{i}", ctx),
        f
        and (
            lambda i: f.fetch(
                f.sql("DELETE FROM {attachments} WHERE owner = $1 AND id = $2"), owner, f"atcf_{i}"
            )
        ),
    )

    page_sql = (
        "SELECT id, payload FROM {items} WHERE owner = $1 AND thread_id = $2 "
        "ORDER BY sort_key DESC, seq DESC LIMIT $3"
    )
    page_after_sql = (
        "SELECT id, payload FROM {items} WHERE owner = $1 AND thread_id = $2 "
        "AND (sort_key, seq) < (SELECT sort_key, seq FROM {items} "
        "WHERE owner = $1 AND thread_id = $2 AND id = $3) "
        "ORDER BY sort_key DESC, seq DESC LIMIT $4"
    )
    for size, (items_owner, thread_id) in data.item_threads.items():
        octx = Ctx(items_owner)
        cursor = f"msg_{size - data.cursor_depth:06d}"
        for limit in (2, 20):
            await both(
                f"load_thread_items desc {limit}, {size} items",
                lambda i, c=octx, t=thread_id, n=limit: store.load_thread_items(
                    t, None, n, "desc", c
                ),
                f
                and (
                    lambda i, o=items_owner, t=thread_id, n=limit: f.fetch(
                        f.sql(page_sql), o, t, n + 1
                    )
                ),
            )
        await both(
            f"load_thread_items desc 20 after, {size} items",
            lambda i, c=octx, t=thread_id, a=cursor: store.load_thread_items(t, a, 20, "desc", c),
            f
            and (
                lambda i, o=items_owner, t=thread_id, a=cursor: f.fetch(
                    f.sql(page_after_sql), o, t, a, 21
                )
            ),
        )
    threads_sql = (
        "SELECT id, payload FROM {threads} WHERE owner = $1 "
        "ORDER BY sort_key DESC, seq DESC LIMIT $2"
    )
    threads_after_sql = (
        "SELECT id, payload FROM {threads} WHERE owner = $1 AND (sort_key, seq) < "
        "(SELECT sort_key, seq FROM {threads} WHERE owner = $1 AND id = $2) "
        "ORDER BY sort_key DESC, seq DESC LIMIT $3"
    )
    for count, threads_owner in data.owners.items():
        octx = Ctx(threads_owner)
        cursor = f"thr_{max(0, count - 5):06d}"
        await both(
            f"load_threads desc 20, {count} threads",
            lambda i, c=octx: store.load_threads(20, None, "desc", c),
            f and (lambda i, o=threads_owner: f.fetch(f.sql(threads_sql), o, 21)),
        )
        await both(
            f"load_threads desc 20 after, {count} threads",
            lambda i, c=octx, a=cursor: store.load_threads(20, a, "desc", c),
            f
            and (lambda i, o=threads_owner, a=cursor: f.fetch(f.sql(threads_after_sql), o, a, 21)),
        )
    return results


BENCH_KEYRING = LocalKeyProvider.new_keyring("bench")
ENCRYPTED_ITEMS = 200


async def bench_encryption(
    plain: Any, sealed: Any, sizes: Sizes
) -> dict[str, tuple[Result, Result]]:
    """The same operations on `sealed` (an EncryptedStore) and on `plain` (the same kind of
    store, unencrypted), interleaved sample by sample; name -> (encrypted, clear)."""
    run = uuid.uuid4().hex[:6]
    results: dict[str, tuple[Result, Result]] = {}
    contexts = {id(plain): Ctx(f"clear-{run}"), id(sealed): Ctx(f"sealed-{run}")}
    for store in (plain, sealed):
        ctx = contexts[id(store)]
        for n in range(25):
            await store.save_thread(
                ThreadMetadata(id=f"thr_{n:06d}", created_at=T0 + timedelta(seconds=n)), ctx
            )
        for n in range(ENCRYPTED_ITEMS):
            item = user_item(f"msg_{n:06d}", "thr_000000", n)
            await store.add_thread_item("thr_000000", item, ctx)
        await store.save_attachment(
            FileAttachment(id="att", name="a.pdf", mime_type="application/pdf"), ctx
        )

    def op(store: Any, name: str) -> Timed:
        ctx = contexts[id(store)]
        calls: dict[str, Timed] = {
            "load_thread": lambda i: store.load_thread("thr_000003", ctx),
            "save_thread": lambda i: store.save_thread(
                ThreadMetadata(id="thr_000004", created_at=T0, title=f"t{i}"), ctx
            ),
            "load_threads desc 20": lambda i: store.load_threads(20, None, "desc", ctx),
            "load_item": lambda i: store.load_item("thr_000000", "msg_000010", ctx),
            "save_item": lambda i: store.save_item(
                "thr_000000", assistant_item("msg_000011", "thr_000000", i), ctx
            ),
            "add_thread_item (new)": lambda i: store.add_thread_item(
                "thr_000001", user_item(f"new_{i + 1000:06d}", "thr_000001", i), ctx
            ),
            "load_thread_items desc 20": lambda i: store.load_thread_items(
                "thr_000000", None, 20, "desc", ctx
            ),
            "load_attachment": lambda i: store.load_attachment("att", ctx),
        }
        return calls[name]

    for name in (
        "load_thread",
        "save_thread",
        "load_threads desc 20",
        "load_item",
        "save_item",
        "add_thread_item (new)",
        "load_thread_items desc 20",
        "load_attachment",
    ):
        sealed_op, plain_op = op(sealed, name), op(plain, name)
        for i in range(sizes.warmup):
            await sealed_op(-1 - i)
            await plain_op(-1 - i)
        samples: dict[int, tuple[list[float], list[float]]] = {0: ([], []), 1: ([], [])}
        for i in range(sizes.iterations):
            for index, timed in ((0, sealed_op), (1, plain_op)):
                start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
                await timed(i)
                samples[index][0].append((time.perf_counter_ns() - start) / 1000)
                samples[index][1].append((time.process_time_ns() - start_cpu) / 1000)
        results[name] = (
            summarize(name, *samples[0]),
            summarize(name, *samples[1]),
        )
    return results


def encryption_table(title: str, results: dict[str, tuple[Result, Result]]) -> str:
    header = (
        f"{'operation':<44} {'sealed µs':>10} {'clear µs':>10} {'x clear':>8} "
        f"{'CPU sealed':>10} {'CPU clear':>10} {'CPU x clear':>11}"
    )
    lines = [f"{title}, encrypted (EncryptedStore) beside unencrypted", header, "-" * len(header)]
    for name, (sealed, clear) in results.items():
        lines.append(
            f"{'encrypted ' + name:<44} {sealed.median_us:>10.0f} {clear.median_us:>10.0f} "
            f"{sealed.median_us / clear.median_us:>8.2f} {sealed.cpu_us:>10.0f} "
            f"{clear.cpu_us:>10.0f} {_ratio(sealed.cpu_us, clear.cpu_us):>11}"
        )
    return "\n".join(lines)


async def encrypted_twin(make: Callable[..., Awaitable[Any]]) -> tuple[Any, Any]:
    """A plain store and an EncryptedStore over a store of the same kind and tables."""
    plain = await make()
    inner = await make(codec=EnvelopeCodec())
    return plain, EncryptedStore(inner, LocalKeyProvider.from_json(BENCH_KEYRING))


def _load() -> str:
    """The 1, 5 and 15 minute load averages, for the reader to judge the figures' noise."""
    try:
        return " / ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:  # (not on every platform)
        return "unknown"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--dsn", default=DSN, help="PostgreSQL DSN (postgresql://...)")
    parser.add_argument(
        "--mysql-url", default=MYSQL_URL, help="MariaDB/MySQL server URL (mysql://...)"
    )
    parser.add_argument(
        "--stores",
        default="sqlite,sqlalchemy+asyncpg,sqlalchemy+psycopg,asyncpg,mysql+asyncmy",
        help="comma-separated store flavours to run (also mysql+aiomysql)",
    )
    parser.add_argument(
        "--iterations", type=int, default=None, help="calls per operation (default 300; 5 small)"
    )
    args = parser.parse_args(argv)
    sizes = SMALL if args.small or os.environ.get("CHATKIT_KIT_BENCH_SMALL") else FULL
    if args.iterations is not None:
        sizes = replace(sizes, iterations=args.iterations, warmup=max(2, args.iterations // 10))
    flavours = [f.strip() for f in args.stores.split(",") if f.strip()]
    pg_flavours = [f for f in flavours if f != "sqlite" and not f.startswith("mysql+")]
    mysql_flavours = [f for f in flavours if f.startswith("mysql+")]
    mysql_names = _schema.Names.create("mysql", None, "chatkit_")
    mysql_db = f"ckbench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(args.mysql_url)
    mysql_url = urlunsplit(parts._replace(path=f"/{mysql_db}"))
    print(
        f"chatkit-kit store benchmark: {sizes.iterations} iterations per operation "
        f"(after {sizes.warmup} warm-up), latencies in microseconds\n"
        f"machine: {os.cpu_count()} CPUs; load average {_load()} at the start\n"
    )
    all_results: dict[str, dict[str, tuple[Result, Result | None]]] = {}
    encrypted_results: dict[str, dict[str, tuple[Result, Result]]] = {}

    async def encrypted(flavour: str, make: Callable[..., Awaitable[Any]]) -> None:
        plain, sealed = await encrypted_twin(make)
        try:
            encrypted_results[flavour] = await bench_encryption(plain, sealed, sizes)
        finally:
            await plain.close()
            await sealed.store.close()

    pg_names = _schema.Names.create("postgresql", f"ckbench_{uuid.uuid4().hex[:8]}", "chatkit_")
    try:
        if pg_flavours:
            setup = await AsyncpgStore.connect(args.dsn, schema=pg_names.schema, min_size=1)
            async with setup:
                await setup.migrate()
            started = time.perf_counter()
            pg_data = await bulk_load_postgres(args.dsn, pg_names, sizes)
            print(f"(PostgreSQL bulk load: {time.perf_counter() - started:.1f} s)")
        if mysql_flavours:
            await mysql_admin(
                args.mysql_url,
                f"CREATE DATABASE `{mysql_db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            )
            async with SQLAlchemyStore.from_url(mysql_url) as setup_mysql:
                await setup_mysql.migrate()
            started = time.perf_counter()
            mysql_data = await bulk_load_mysql(mysql_url, mysql_names, sizes)
            print(f"(MariaDB bulk load: {time.perf_counter() - started:.1f} s)")
        for flavour in flavours:
            if flavour == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "bench.db"
                    store: Any = SQLAlchemyStore.from_url(f"sqlite+aiosqlite:///{path}")
                    async with store:
                        await store.migrate()
                        names = _schema.Names.create("sqlite", None, "chatkit_")
                        data = await asyncio.to_thread(bulk_load_sqlite, path, names, sizes)
                        all_results[flavour] = await bench_store(store, names, data, sizes, True)

                        async def make_sqlite(path: Path = path, **kw: Any) -> Any:
                            return SQLAlchemyStore.from_url(f"sqlite+aiosqlite:///{path}", **kw)

                        await encrypted(flavour, make_sqlite)
                continue
            if flavour.startswith("mysql+"):
                url = mysql_url.replace("mysql://", f"{flavour}://", 1)
                store = SQLAlchemyStore.from_url(url, pool_size=4)
                async with store:
                    all_results[flavour] = await bench_store(
                        store, mysql_names, mysql_data, sizes, True
                    )

                async def make_mysql(url: str = url, **kw: Any) -> Any:
                    return SQLAlchemyStore.from_url(url, pool_size=4, **kw)

                await encrypted(flavour, make_mysql)
                continue
            if flavour == "asyncpg":
                store = await AsyncpgStore.connect(
                    args.dsn, schema=pg_names.schema, min_size=2, max_size=4
                )
            else:
                driver = flavour.split("+", 1)[1]
                url = args.dsn.replace("postgresql://", f"postgresql+{driver}://", 1)
                store = SQLAlchemyStore.from_url(url, schema=pg_names.schema, pool_size=4)
            async with store:
                all_results[flavour] = await bench_store(store, pg_names, pg_data, sizes, True)

            async def make_pg(flavour: str = flavour, **kw: Any) -> Any:
                if flavour == "asyncpg":
                    return await AsyncpgStore.connect(
                        args.dsn, schema=pg_names.schema, min_size=2, max_size=4, **kw
                    )
                driver = flavour.split("+", 1)[1]
                url = args.dsn.replace("postgresql://", f"postgresql+{driver}://", 1)
                return SQLAlchemyStore.from_url(url, schema=pg_names.schema, pool_size=4, **kw)

            await encrypted(flavour, make_pg)
    finally:
        if mysql_flavours:
            await mysql_admin(args.mysql_url, f"DROP DATABASE IF EXISTS `{mysql_db}`")
        if pg_flavours:
            conn = await asyncpg.connect(args.dsn)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{pg_names.schema}" CASCADE')
            finally:
                await conn.close()

    titles = {
        "sqlite": "SQLAlchemyStore, SQLite (aiosqlite)",
        "sqlalchemy+asyncpg": "SQLAlchemyStore, PostgreSQL via asyncpg",
        "sqlalchemy+psycopg": "SQLAlchemyStore, PostgreSQL via psycopg 3",
        "asyncpg": "AsyncpgStore, PostgreSQL",
        "mysql+asyncmy": "SQLAlchemyStore, MariaDB via asyncmy",
        "mysql+aiomysql": "SQLAlchemyStore, MariaDB via aiomysql",
    }
    reference = all_results.get("asyncpg")
    for flavour, results in all_results.items():
        use_ref = reference is not None and flavour.startswith("sqlalchemy+")
        rows = [
            (name, result, floor, reference[name][0] if use_ref and reference else None)
            for name, (result, floor) in results.items()
        ]
        print(table(titles[flavour], rows))
        print()

    for flavour, sealed_results in encrypted_results.items():
        print(encryption_table(titles[flavour], sealed_results))
        print()

    print(f"machine: load average {_load()} at the end\n")
    print("Targets (ratios of medians from this run)")
    small, big = min(sizes.item_threads), max(sizes.item_threads)
    for flavour, results in all_results.items():
        for label in ("load_thread_items desc 20", "load_thread_items desc 20 after"):
            ratio = (
                results[f"{label}, {big} items"][0].median_us
                / results[f"{label}, {small} items"][0].median_us
            )
            print(
                f"  {titles[flavour]}: {label} at {big} / at {small} items = {ratio:.2f} (<= 1.5)"
            )
    if "sqlite" in all_results:
        worst = max(
            (r.median_us / fl.median_us, name)
            for name, (r, fl) in all_results["sqlite"].items()
            if fl
        )
        print(
            f"  {titles['sqlite']} / raw aiosqlite + decode, worst operation: "
            f"{worst[0]:.2f} ({worst[1]}) (<= 3)"
        )
    for flavour in mysql_flavours:
        worst = max(
            (r.median_us / fl.median_us, name)
            for name, (r, fl) in all_results[flavour].items()
            if fl
        )
        print(f"  {titles[flavour]} / floor, worst operation: {worst[0]:.2f} ({worst[1]}) (<= 1.5)")
    if reference:
        worst = max((r.median_us / fl.median_us, name) for name, (r, fl) in reference.items() if fl)
        print(f"  AsyncpgStore / floor, worst operation: {worst[0]:.2f} ({worst[1]}) (<= 1.5)")
        worst = max(
            (r.cpu_us / fl.cpu_us, name) for name, (r, fl) in reference.items() if fl and fl.cpu_us
        )
        print(f"  AsyncpgStore / floor, CPU, worst operation: {worst[0]:.2f} ({worst[1]}) (<= 1.5)")
        for flavour in ("sqlalchemy+asyncpg", "sqlalchemy+psycopg"):
            if flavour in all_results:
                worst = max(
                    (r.median_us / reference[name][0].median_us, name)
                    for name, (r, _) in all_results[flavour].items()
                )
                print(
                    f"  {titles[flavour]} / AsyncpgStore, worst operation: "
                    f"{worst[0]:.2f} ({worst[1]}) (<= 2.5)"
                )
                worst = max(
                    (r.cpu_us / reference[name][0].cpu_us, name)
                    for name, (r, _) in all_results[flavour].items()
                    if reference[name][0].cpu_us
                )
                print(
                    f"  {titles[flavour]} / AsyncpgStore, CPU, worst operation: "
                    f"{worst[0]:.2f} ({worst[1]}) (<= 1.5)"
                )
    for flavour, sealed_results in encrypted_results.items():
        worst = max((r.median_us / c.median_us, name) for name, (r, c) in sealed_results.items())
        print(
            f"  {titles[flavour]} encrypted / unencrypted, worst operation: "
            f"{worst[0]:.2f} ({worst[1]}) (<= 1.3)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
