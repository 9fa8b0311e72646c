"""`chatkit-kit prune` and `chatkit-kit erase-owner` on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from chatkit.types import ThreadMetadata

from chatkit_kit.cli import _retention as _cli_retention
from chatkit_kit.cli import main
from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from chatkit_kit.testing.retention import _message

from .stores.sql_support import fresh_schema

OLD = datetime.now(timezone.utc) - timedelta(days=200)
NEW = datetime.now(timezone.utc) - timedelta(days=2)


@dataclass
class Ctx:
    user_id: str


async def _fill(open_store: Any) -> None:
    async with await open_store() as store:
        await store.migrate()
        for user in ("alice", "bob"):
            ctx = Ctx(user)
            for n in range(3):
                await store.save_thread(ThreadMetadata(id=f"old{n}", created_at=OLD), ctx)
                await store.add_thread_item(f"old{n}", _message(f"old{n}", "m", OLD), ctx)
            await store.save_thread(ThreadMetadata(id="new", created_at=NEW), ctx)


async def _threads(open_store: Any, user: str) -> list[str]:
    async with await open_store() as store:
        page = await store.load_threads(100, None, "asc", Ctx(user))
        return sorted(t.id for t in page.data)


def _check_cli(
    url: str, extra: list[str], open_store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_fill(open_store))

    assert main(["prune", url, *extra, "--older-than", "90d", "--dry-run"]) == 0
    assert "would prune 6 threads" in capsys.readouterr().out
    assert asyncio.run(_threads(open_store, "alice")) == ["new", "old0", "old1", "old2"]

    assert main(["prune", url, *extra, "--older-than", "90d", "--owner", "bob"]) == 0
    assert "pruned 3 threads" in capsys.readouterr().out
    assert asyncio.run(_threads(open_store, "bob")) == ["new"]
    assert asyncio.run(_threads(open_store, "alice")) == ["new", "old0", "old1", "old2"]

    assert main(["erase-owner", url, *extra, "alice", "--batch-size", "1"]) == 0
    assert "erased owner 'alice': 4 threads" in capsys.readouterr().out
    assert asyncio.run(_threads(open_store, "alice")) == []
    assert asyncio.run(_threads(open_store, "bob")) == ["new"]

    assert main(["prune", url, *extra, "--older-than", "1d"]) == 0
    assert "pruned 1 threads" in capsys.readouterr().out


def test_prune_and_erase_owner_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"

    async def open_store() -> Any:
        return SQLAlchemyStore.from_url(url)

    _check_cli(url, [], open_store, capsys)


def test_prune_and_erase_owner_on_postgresql(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_schema(postgres_dsn) as schema:

        async def open_store() -> Any:
            return await AsyncpgStore.connect(postgres_dsn, schema=schema)

        _check_cli(postgres_dsn, ["--schema", schema], open_store, capsys)


def test_long_runs_print_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"

    async def open_store() -> Any:
        return SQLAlchemyStore.from_url(url)

    asyncio.run(_fill(open_store))
    monkeypatch.setattr(_cli_retention._Progress, "interval", 0.0)
    assert main(["prune", url, "--older-than", "90d", "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    assert "... pruned 2 threads so far" in captured.err
    assert "... pruned 6 threads so far" in captured.err
    assert "pruned 6 threads" in captured.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prune", "sqlite:///x.db", "--older-than", "ninety"], "invalid age 'ninety'"),
        (["prune", "oracle://x/y", "--older-than", "9d"], "oracle"),
        (["erase-owner", "sqlite:///x.db", "u", "--schema", "s"], "PostgreSQL option"),
        (["erase-owner", "sqlite:///x.db", "u", "--batch-size", "0"], "--batch-size"),
        # Every subcommand judges a URL the same way as `migrate`, before connecting.
        (
            ["prune", "mysql://u@h/db", "--older-than", "9d", "--schema", "s"],
            "--schema is a PostgreSQL option; on MySQL",
        ),
        (["erase-owner", "mysql://u@h/db", "u", "--schema", "s"], "PostgreSQL option"),
        (["migrate", "mysql://u@h/db", "--schema", "s"], "PostgreSQL option"),
        (["erase-owner", "sqlite:///x.db", "u", "--table-prefix", "9x"], "table prefix"),
        (["prune", "postgresql://u@h/db", "--older-than", "9d", "--schema", "pg_x"], "system"),
    ],
)
def test_user_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_parse_age() -> None:
    assert _cli_retention.parse_age("90d") == timedelta(days=90)
    assert _cli_retention.parse_age("1d12h") == timedelta(days=1, hours=12)
    assert _cli_retention.parse_age("2w") == timedelta(weeks=2)
