"""One URL rule for SQLAlchemyStore.from_url, the CLI and the demo."""

from __future__ import annotations

import sys

import pytest

from chatkit_kit._install import install_command
from chatkit_kit.errors import MissingDependencyError
from chatkit_kit.stores import redact_database_url, resolve_database_url
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        (
            "postgres://u:p@h:5/db?sslmode=require",
            "postgresql+asyncpg://u:p@h:5/db?sslmode=require",
        ),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("POSTGRESQL://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///chat.db", "sqlite+aiosqlite:///chat.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("sqlite+aiosqlite:////abs/chat.db", "sqlite+aiosqlite:////abs/chat.db"),
    ],
)
def test_urls_resolve_to_an_installed_async_driver(url: str, resolved: str) -> None:
    assert resolve_database_url(url) == resolved


def test_without_asyncpg_postgresql_urls_pick_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    assert resolve_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(MissingDependencyError) as caught:
        resolve_database_url("postgresql+asyncpg://u@h/db")
    assert str(caught.value).endswith(install_command("asyncpg")), caught.value
    assert isinstance(caught.value, ImportError) and caught.value.extra == "asyncpg"
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingDependencyError) as caught:
        resolve_database_url("postgresql://u@h/db")
    # One command (asyncpg's); psycopg is named as the other driver's extra.
    message = str(caught.value)
    assert message.endswith(install_command("asyncpg")) and message.count("pip install") == 1
    assert "the psycopg extra provides another driver" in message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://u@h/db", "unsupported database URL scheme 'oracle'"),
        ("mysql+pymysql://u@h/db", "cannot use"),
        ("postgresql+psycopg2://u@h/db", "cannot use"),
        ("sqlite+pysqlite:///x.db", "cannot use"),
        ("chat.db", "is not a database URL"),
        ("://nothing", "is not a database URL"),
    ],
)
def test_unsupported_urls_are_value_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_database_url(url)
    with pytest.raises(ValueError, match=message):
        SQLAlchemyStore.from_url(url)


def test_passwords_are_redacted() -> None:
    assert redact_database_url("postgresql://u:s3cret@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact_database_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_database_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError) as hidden:
        resolve_database_url("oracle://u:s3cret@h/db")
    assert "s3cret" not in str(hidden.value)


async def test_from_url_takes_the_urls_the_cli_takes(postgres_dsn: str, pg_schema: str) -> None:
    for url in (postgres_dsn, postgres_dsn.replace("postgresql://", "postgres://", 1)):
        async with SQLAlchemyStore.from_url(url, schema=pg_schema) as store:
            assert store.engine.dialect.driver == "asyncpg"
            page = await store.load_threads(5, None, "asc", Ctx("nobody-at-all"))
            assert page.data == []
