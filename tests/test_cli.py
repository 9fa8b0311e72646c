"""The `chatkit-kit` console script."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from chatkit.types import ThreadMetadata

from chatkit_kit.cli import main
from chatkit_kit.stores import SCHEMA_VERSION
from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore

from .stores.sql_support import fresh_schema, sqlalchemy_url

SRC = str(Path(__file__).resolve().parents[1] / "src")


@dataclass
class Ctx:
    user_id: str


async def _works(store: SQLAlchemyStore[Ctx] | AsyncpgStore[Ctx]) -> None:
    async with store:
        thread = ThreadMetadata(id="t", created_at=datetime(2026, 1, 1))
        await store.save_thread(thread, Ctx("u"))
        assert await store.load_thread("t", Ctx("u")) == thread


def test_migrate_sqlite_then_up_to_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert main(["migrate", url, "--table-prefix", "ck_"]) == 0
    assert f"from version 0 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["migrate", url, "--table-prefix", "ck_"]) == 0
    assert f"up to date (version {SCHEMA_VERSION})" in capsys.readouterr().out
    store: SQLAlchemyStore[Ctx] = SQLAlchemyStore.from_url(
        f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", table_prefix="ck_"
    )
    asyncio.run(_works(store))


@pytest.mark.parametrize("driver", [None, "asyncpg", "psycopg"])
def test_migrate_postgresql_urls(
    postgres_dsn: str, driver: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres_dsn if driver is None else sqlalchemy_url(postgres_dsn, driver)
    with fresh_schema(postgres_dsn) as schema:
        assert main(["migrate", url, "--schema", schema, "--target", "1"]) == 0
        assert "from version 0 to 1" in capsys.readouterr().out
        assert main(["migrate", url, "--schema", schema]) == 0
        assert f"from version 1 to {SCHEMA_VERSION}" in capsys.readouterr().out

        async def check() -> None:
            await _works(await AsyncpgStore.connect(postgres_dsn, schema=schema))

        asyncio.run(check())


def test_sql_prints_a_script_a_dba_can_apply(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_schema(postgres_dsn) as schema:
        # --sql never connects: the host does not even exist.
        bogus = "postgresql://nobody@db.invalid:1/nothing"
        assert main(["migrate", bogus, "--sql", "--schema", schema]) == 0
        script = capsys.readouterr().out
        assert "CREATE TABLE" in script and "pg_advisory_xact_lock" in script
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(script)  # type: ignore[call-overload]

        async def check() -> None:
            store: AsyncpgStore[Ctx] = await AsyncpgStore.connect(postgres_dsn, schema=schema)
            assert await store.schema_version() == SCHEMA_VERSION
            await _works(store)

        asyncio.run(check())
        # Printing from version 1 gives only the later migrations.
        assert main(["migrate", bogus, "--sql", "--schema", schema, "--from-version", "1"]) == 0
        later = capsys.readouterr().out
        assert "thread_items" not in later.split("schema_version", 1)[1].split("attachments")[0]


def test_sql_for_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dba.db"
    assert main(["migrate", f"sqlite+aiosqlite:///{path}", "--sql"]) == 0
    with sqlite3.connect(path) as conn:
        conn.executescript(capsys.readouterr().out)
    store: SQLAlchemyStore[Ctx] = SQLAlchemyStore.from_url(f"sqlite+aiosqlite:///{path}")
    asyncio.run(_works(store))


def test_errors_are_reported_without_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", f"sqlite:///{tmp_path / 'x.db'}", "--table-prefix", "bad-"]) == 1
    assert "table prefix 'bad-'" in capsys.readouterr().err
    assert main(["migrate", "postgresql://nobody@127.0.0.1:1/x"]) == 1
    assert "database connection failed" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unsupported database URL scheme 'oracle'"):
        main(["migrate", "oracle://x/y"])
    with pytest.raises(SystemExit):
        main([])


def test_console_script_module_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatkit_kit.cli", "migrate", f"sqlite:///{tmp_path / 'm.db'}"],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"to {SCHEMA_VERSION}" in result.stdout
