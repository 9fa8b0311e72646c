"""bench/stores.py runs end to end (with tiny sizes; timings are not checked)."""

from __future__ import annotations

import pytest

from . import run_bench

pytestmark = pytest.mark.slow  # runs a bench script end to end: `nox -s slow`


def test_store_benchmark_runs_and_prints_every_table(postgres_dsn: str, mariadb_url: str) -> None:
    result = run_bench("stores.py", "--small", "--dsn", postgres_dsn, "--mysql-url", mariadb_url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in (
        "SQLAlchemyStore, SQLite (aiosqlite)",
        "SQLAlchemyStore, PostgreSQL via asyncpg",
        "SQLAlchemyStore, PostgreSQL via psycopg 3",
        "AsyncpgStore, PostgreSQL",
        "SQLAlchemyStore, MariaDB via asyncmy",
    ):
        assert title in out
    for operation in (
        "load_thread ",
        "save_thread (new)",
        "delete_thread (5 items)",
        "load_thread_items desc 20 after, 1000 items",
        "load_threads desc 20, 100 threads",
        "delete_attachment",
    ):
        # One row per store table (the target lines below may name it once more).
        rows = [line for line in out.splitlines() if line.startswith(operation)]
        assert len(rows) == 5, operation
    assert "AsyncpgStore / floor, worst operation" in out
    assert "MariaDB via asyncmy / floor, worst operation" in out
