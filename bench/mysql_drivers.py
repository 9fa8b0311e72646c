"""Compare the async MySQL drivers SQLAlchemy supports (asyncmy, aiomysql) for chatkit-kit.

Run with `python bench/mysql_drivers.py` against MariaDB or MySQL at CHATKIT_KIT_TEST_MYSQL_URL
(default mysql://root@127.0.0.1:3306/test). It works in a table of its own that it drops at the
end, checks what the store needs to round-trip exactly (4-byte UTF-8, U+0000, microsecond
DATETIME(6), large text) and times point reads and writes through a SQLAlchemy async engine.
Prints one table; the figures in docs/stores.md come from it. It never asserts on time.
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


async def timed(engine: AsyncEngine, table: str, iterations: int) -> dict[str, float]:
    body = "The quick brown fox jumps over the lazy dog. " * 20
    timings: dict[str, list[float]] = {"insert (autocommit)": [], "point select": []}
    auto = engine.execution_options(isolation_level="AUTOCOMMIT")
    insert = text(f"INSERT INTO {table} (id, body, at) VALUES (:id, :body, :at)")
    select = text(f"SELECT body FROM {table} WHERE id = :id")
    for n in range(iterations):
        async with auto.connect() as conn:
            start = time.perf_counter()
            await conn.execute(insert, {"id": 1000 + n, "body": body, "at": MICROS})
            timings["insert (autocommit)"].append(time.perf_counter() - start)
        async with auto.connect() as conn:
            start = time.perf_counter()
            (await conn.execute(select, {"id": 1000 + n})).scalar()
            timings["point select"].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e6 for name, values in timings.items()}


async def run(iterations: int) -> None:
    rows: dict[str, dict[str, Any]] = {}
    for driver in DRIVERS:
        url = make_url(URL).set(drivername=f"mysql+{driver}")
        engine = create_async_engine(url, pool_size=2)
        table = f"ckt_drivers_{uuid.uuid4().hex[:8]}"
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        f"CREATE TABLE {table} (id int PRIMARY KEY, body longtext NOT NULL, "
                        "at datetime(6) NOT NULL) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                    )
                )
            checks = await correctness(engine, table)
            for _ in range(20):  # warm up the pool and the server
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            rows[driver] = {**checks, **await timed(engine, table, iterations)}
        finally:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
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
        unit = "" if isinstance(rows[DRIVERS[0]][name], bool) else " (median us)"
        print(f"| {name}{unit} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(run(args.iterations))


if __name__ == "__main__":
    main()
