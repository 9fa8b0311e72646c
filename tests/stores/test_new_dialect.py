"""A database added from outside the library: one `SQLDialect` subclass plus one registration,
and its URLs work with `SQLAlchemyStore.from_url`, `resolve_database_url` and the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest
from chatkit.types import ThreadMetadata

from chatkit_kit.cli import main
from chatkit_kit.stores import SCHEMA_VERSION, resolve_database_url
from chatkit_kit.stores.sql.dialects import (
    SQLiteDialect,
    dialect_for_url,
    register_dialect,
)
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx


class ToyLiteDialect(SQLiteDialect):
    """SQLite's SQL under a URL scheme of its own, as a new database registers itself."""

    name = "toylite"
    title = "ToyLite"
    backends = ("toylite",)
    # toylite:// URLs connect with SQLAlchemy's sqlite backend.
    url_schemes: ClassVar[Mapping[str, str]] = {"toylite": "sqlite"}
    url_example = "toylite:///path.db"
    tables_live_in = "one toy file"


TOYLITE = register_dialect(ToyLiteDialect())


def test_its_urls_resolve_to_the_sqlalchemy_backend_it_names(tmp_path: Path) -> None:
    assert dialect_for_url("TOYLITE:///x.db") is TOYLITE
    assert resolve_database_url("toylite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert resolve_database_url("toylite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    with pytest.raises(ValueError, match="use toylite\\+aiosqlite:// or toylite://"):
        resolve_database_url("toylite+pysqlite:///x.db")


async def test_from_url_runs_the_store_on_the_new_dialect(tmp_path: Path) -> None:
    async with SQLAlchemyStore[Ctx].from_url(f"toylite:///{tmp_path / 'toy.db'}") as store:
        assert store._dialect is TOYLITE
        await store.migrate()
        thread = ThreadMetadata(id="t", created_at=datetime(2026, 1, 1))
        await store.save_thread(thread, Ctx("u"))
        assert await store.load_thread("t", Ctx("u")) == thread
        with pytest.raises(ValueError, match="PostgreSQL option"):
            SQLAlchemyStore.from_url(f"toylite:///{tmp_path / 'other.db'}", schema="s")


def test_the_commands_take_its_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"toylite:///{tmp_path / 'app.db'}"
    assert main(["migrate", url]) == 0
    assert f"from version 0 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["prune", url, "--schema", "s", "--older-than", "30d"]) == 2
    assert "on ToyLite the tables live in one toy file" in capsys.readouterr().err

    async def count_threads() -> int:
        async with SQLAlchemyStore[Ctx].from_url(url) as store:
            return len((await store.load_threads(10, None, "asc", Ctx("u"))).data)

    assert asyncio.run(count_threads()) == 0


@pytest.mark.parametrize("command", ["migrate", "prune", "erase-owner"])
def test_the_commands_help_lists_its_url_forms(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert "ToyLite: toylite://..., toylite+aiosqlite://..." in shown
    assert "toylite:///path.db" in shown
    # The built-in databases stay listed beside it.
    assert "postgresql+psycopg://..." in shown and "mysql+aiomysql://..." in shown
