"""Compare the async MySQL drivers SQLAlchemy supports (asyncmy, aiomysql) for chatkit-kit.

Run with `python bench/mysql_drivers.py` against MariaDB or MySQL at CHATKIT_KIT_TEST_MYSQL_URL
(default mysql://root@127.0.0.1:3306/test). It works in a table of its own that it drops at the
end, checks what the store needs to round-trip exactly (4-byte UTF-8, U+0000, microsecond
DATETIME(6), large text) and times point reads and writes through a SQLAlchemy async engine.
Drivers are timed call by call in turn, so load from elsewhere hits both alike; client CPU per
call is the driver's own cost, which other load barely moves. Prints one table; the figures in
docs/stores.md come from it. It never asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

URL = os.environ.get("CHATKIT_KIT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
DRIVERS = ("asyncmy", "aiomysql")
SAMPLES = {
    "4-byte text": "emoji \U0001f600 math \U0001d49c han \U00020000",
    "U+0000": "a\x00b\x00",
    "large text (1 MiB)": "x\U0001f600" * 200_000,
}
MICROS = datetime(2026, 1, 2, 3, 4, 5, 123456)


async def correctness(engine: AsyncEngine, table: str) -> dict[str, bool]:
    results: dict[str, bool] = {}
    async with engine.begin() as conn:
        for n, (name, value) in enumerate(SAMPLES.items()):
            await conn.execute(
                text(f"INSERT INTO {table} (id, body, at) VALUES (:id, :body, :at)"),
                {"id": n, "body": value, "at": MICROS},
            )
            back = (
                await conn.execute(text(f"SELECT body FROM {table} WHERE id = :id"), {"id": n})
            ).scalar()
            results[name] = back == value
        at = (await conn.execute(text(f"SELECT at FROM {table} WHERE id = 0"))).scalar()
        results["DATETIME(6) microseconds"] = at == MICROS
        key = (
            await conn.execute(
                text(f"SELECT COUNT(*) FROM {table} WHERE body = :body"),
                {"body": SAMPLES["4-byte text"]},
            )
        ).scalar()
        results["4-byte text as a bound key"] = key == 1
    return results


async def timed(engines: dict[str, AsyncEngine], table: str, iterations: int) -> dict[str, Any]:
    """Median wall time per call and client CPU per call, drivers interleaved call by call."""
    body = "The quick brown fox jumps over the lazy dog. " * 20
    insert = text(f"INSERT INTO {table} (id, body, at) VALUES (:id, :body, :at)")
    select = text(f"SELECT body FROM {table} WHERE id = :id")
    autos = {d: e.execution_options(isolation_level="AUTOCOMMIT") for d, e in engines.items()}
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], float] = {}

    async def one(driver: str, name: str, statement: Any, params: dict[str, Any]) -> None:
        async with autos[driver].connect() as conn:
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            result = await conn.execute(statement, params)
            if result.returns_rows:
                result.all()
            cpu_spent = time.process_time() - cpu_start
            wall.setdefault((driver, name), []).append(time.perf_counter() - wall_start)
            cpu[driver, name] = cpu.get((driver, name), 0.0) + cpu_spent

    for n in range(iterations):
        for k, driver in enumerate(engines):
            row_id = 1000 + n * len(engines) + k
            row = {"id": row_id, "body": body, "at": MICROS}
            await one(driver, "insert (autocommit)", insert, row)
            await one(driver, "point select", select, {"id": row_id})
    results: dict[str, Any] = {}
    for (driver, name), samples in wall.items():
        results.setdefault(driver, {})[f"{name}: median wall us"] = statistics.median(samples) * 1e6
        results[driver][f"{name}: client CPU us"] = cpu[driver, name] / len(samples) * 1e6
    return results


async def run(iterations: int) -> None:
    rows: dict[str, dict[str, Any]] = {}
    engines = {
        driver: create_async_engine(make_url(URL).set(drivername=f"mysql+{driver}"), pool_size=2)
        for driver in DRIVERS
    }
    table = f"ckt_drivers_{uuid.uuid4().hex[:8]}"
    first = engines[DRIVERS[0]]
    try:
        async with first.begin() as conn:
            await conn.execute(
                text(
                    f"CREATE TABLE {table} (id int PRIMARY KEY, body longtext NOT NULL, "
                    "at datetime(6) NOT NULL) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
            )
        for driver, engine in engines.items():
            rows[driver] = await correctness(engine, table)
            async with engine.begin() as conn:
                await conn.execute(text(f"DELETE FROM {table}"))
            for _ in range(20):  # warm up the pool and the server
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        for driver, figures in (await timed(engines, table, iterations)).items():
            rows[driver].update(figures)
    finally:
        async with first.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        for engine in engines.values():
            await engine.dispose()
    names = list(rows[DRIVERS[0]])
    print(f"| check | {' | '.join(DRIVERS)} |")
    print(f"| --- | {' | '.join('---' for _ in DRIVERS)} |")
    for name in names:
        cells = []
        for driver in DRIVERS:
            value = rows[driver][name]
            if isinstance(value, bool):
                cells.append("ok" if value else "WRONG")
            else:
                cells.append(f"{value:.0f}")
        print(f"| {name} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(run(args.iterations))


if __name__ == "__main__":
    main()
