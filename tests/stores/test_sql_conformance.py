"""Every SQL store flavour passes the whole StoreConformance suite.

SQLAlchemyStore on SQLite (aiosqlite) and on PostgreSQL via asyncpg and via psycopg, and
AsyncpgStore on PostgreSQL: the real local server, in this session's fresh schema; and the
PostgreSQL ones again through PgBouncer in transaction pooling mode (`pgbouncer=True`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatkit_kit.testing import StoreConformance

from .sql_support import Flavour


class _SQLConformance(StoreConformance):
    flavour: Flavour

    async def make_store(self) -> Any:
        return await self.flavour.make()

    async def teardown_store(self, store: Any) -> None:
        await store.close()


class TestSQLAlchemySQLiteConformance(_SQLConformance):
    @pytest.fixture(autouse=True)
    def _database(self, sqlite_db: Path) -> None:
        self.flavour = Flavour("sqlite", None, sqlite_db)


class _PostgresConformance(_SQLConformance):
    driver: str

    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str, pg_schema: str) -> None:
        self.flavour = Flavour(self.driver, postgres_dsn, schema=pg_schema)


class TestSQLAlchemyAsyncpgConformance(_PostgresConformance):
    driver = "sqlalchemy+asyncpg"


class TestSQLAlchemyPsycopgConformance(_PostgresConformance):
    driver = "sqlalchemy+psycopg"


class TestAsyncpgStoreConformance(_PostgresConformance):
    driver = "asyncpg"


class _PgBouncerConformance(_SQLConformance):
    driver: str

    @pytest.fixture(autouse=True)
    def _database(self, pgbouncer_dsn: str, pg_schema: str) -> None:
        self.flavour = Flavour(f"{self.driver}@pgbouncer", pgbouncer_dsn, schema=pg_schema)


class TestSQLAlchemyAsyncpgPgBouncerConformance(_PgBouncerConformance):
    driver = "sqlalchemy+asyncpg"


class TestSQLAlchemyPsycopgPgBouncerConformance(_PgBouncerConformance):
    driver = "sqlalchemy+psycopg"


class TestAsyncpgStorePgBouncerConformance(_PgBouncerConformance):
    driver = "asyncpg"
