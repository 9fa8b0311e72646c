"""The `chatkit-kit` console script."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from chatkit.types import ThreadMetadata

from chatkit_kit._install import install_command
from chatkit_kit.cli import main
from chatkit_kit.stores import SCHEMA_VERSION
from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx

from .stores.sql_support import fresh_schema, sqlalchemy_url

SRC = str(Path(__file__).resolve().parents[1] / "src")


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
            conn.execute(script)

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
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(capsys.readouterr().out)
    store: SQLAlchemyStore[Ctx] = SQLAlchemyStore.from_url(f"sqlite+aiosqlite:///{path}")
    asyncio.run(_works(store))


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["migrate", "oracle://x/y"], 2, "unsupported database URL scheme 'oracle'"),
        (["migrate", "not a url"], 2, "is not a database URL"),
        (["migrate", "postgresql+psycopg2://x/y"], 2, "names a driver chatkit-kit cannot use"),
        (["migrate", "sqlite:///x.db", "--schema", "s"], 2, "--schema is a PostgreSQL option"),
        (["migrate", "sqlite:///x.db", "--table-prefix", "bad-"], 2, "table prefix 'bad-'"),
        (["migrate", "postgresql://u@h/d", "--schema", "pg_catalog"], 2, "system schema"),
        (["migrate", "sqlite:///x.db", "--target", "99"], 2, "target version 99"),
        (["migrate", "postgresql://u@127.0.0.1:1/x"], 1, "cannot reach the database"),
        (["migrate", "postgresql+psycopg://u@127.0.0.1:1/x"], 1, "cannot reach the database"),
    ],
)
def test_user_errors_print_one_line_and_exit_2_or_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    status: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("chatkit-kit migrate: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


@pytest.mark.parametrize("change", ["database", "role"])
def test_missing_database_or_role_is_one_line(
    postgres_dsn: str, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = urlsplit(postgres_dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    if change == "database":
        url = urlunsplit(parts._replace(path="/ck_no_such_database"))
        expected = 'database "ck_no_such_database" does not exist'
    else:
        url = urlunsplit(parts._replace(netloc=f"ck_no_such_role:hunter2@{host}"))
        expected = 'role "ck_no_such_role" does not exist'
    for variant in (url, url.replace("postgresql://", "postgresql+psycopg://", 1)):
        assert main(["migrate", variant]) == 1
        err = capsys.readouterr().err
        assert expected in err and "check the database name" in err, err
        assert err.count("\n") == 1 and "hunter2" not in err


def test_newer_schema_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "new.db"
    assert main(["migrate", f"sqlite:///{path}"]) == 0
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO chatkit_schema_version (version, description) VALUES (99, 'x')")
    capsys.readouterr()
    assert main(["migrate", f"sqlite:///{path}"]) == 1
    err = capsys.readouterr().err
    assert "schema version 99" in err and "upgrade chatkit-kit" in err
    assert err.count("\n") == 1


def test_debug_shows_the_traceback() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        main(["--debug", "migrate", "oracle://x/y"])
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        main(["migrate", "oracle://x/y", "--debug"])
    with pytest.raises(SystemExit) as usage:
        main([])
    assert usage.value.code == 2


_WITHOUT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if not installed
from chatkit_kit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_without(blocked: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT.format(blocked=blocked), *args],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


NO_DRIVERS = ("sqlalchemy", "aiosqlite", "asyncpg", "psycopg")


@pytest.mark.slow  # three fresh interpreters importing the whole CLI
def test_sql_needs_no_driver_at_all(tmp_path: Path) -> None:
    for url in ("postgresql://u@db.invalid/x", "postgresql+psycopg://u@h/x", "sqlite:///a.db"):
        result = _run_without(NO_DRIVERS, "migrate", url, "--sql")
        assert result.returncode == 0, result.stderr
        assert "CREATE TABLE" in result.stdout


def test_postgresql_migrate_needs_only_asyncpg(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_schema(postgres_dsn) as schema:
        result = _run_without(
            ("sqlalchemy", "psycopg"), "migrate", postgres_dsn, "--schema", schema
        )
        assert result.returncode == 0, result.stderr
        assert f"to {SCHEMA_VERSION}" in result.stdout


@pytest.mark.parametrize(
    ("blocked", "url", "extra"),
    [
        (NO_DRIVERS, "postgresql://u@h/x", "asyncpg"),
        (NO_DRIVERS, "postgres://u@h/x", "asyncpg"),
        (NO_DRIVERS, "postgresql+psycopg://u@h/x", "psycopg"),
        (("aiosqlite",), "sqlite:///a.db", "sqlalchemy"),
        (("sqlalchemy",), "sqlite:///a.db", "sqlalchemy"),
    ],
)
def test_missing_extra_is_one_line_naming_it(
    tmp_path: Path, blocked: tuple[str, ...], url: str, extra: str
) -> None:
    result = _run_without(blocked, "migrate", url)
    assert result.returncode == 1
    # One command that installs the extra where chatkit-kit came from; the extra named once.
    assert result.stderr.rstrip().endswith(install_command(extra)), result.stderr
    assert result.stderr.count("pip install") == 1 and result.stderr.count(f"[{extra}]") == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


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
