"""Every SQL store flavour passes both conformance tiers and the attachment-index suite.

SQLAlchemyStore on SQLite (aiosqlite), on PostgreSQL via asyncpg and via psycopg and on MariaDB
via asyncmy and via aiomysql, and AsyncpgStore on PostgreSQL: the real local servers, in this
session's fresh PostgreSQL schema or MariaDB database; and the PostgreSQL
ones again through PgBouncer in transaction pooling mode (`pgbouncer=True`).

The PgBouncer runs, the second PostgreSQL driver of SQLAlchemyStore (psycopg) and the second
MariaDB driver (aiomysql) repeat the suite on a path the fast suite already covers elsewhere
(test_pgbouncer.py, test_mysql.py, and the fault, cancellation and store tests, which run every
driver): they are `slow` (CI runs them in `nox -s slow`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatkit_kit.testing import AttachmentIndexConformance, StrictStoreConformance

from .sql_support import Flavour


class _SQLStore:
    flavour: Flavour

    async def make_store(self) -> Any:
        return await self.flavour.make()

    async def teardown_store(self, store: Any) -> None:
        await store.close()

    async def reopen(self, store: Any) -> Any:
        """A new store on the same database (file, schema): the reopen rules."""
        return await self.flavour.make()


class _SQLite(_SQLStore):
    @pytest.fixture(autouse=True)
    def _database(self, sqlite_db: Path) -> None:
        self.flavour = Flavour("sqlite", None, sqlite_db)


class _Postgres(_SQLStore):
    driver: str

    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str, pg_schema: str) -> None:
        self.flavour = Flavour(self.driver, postgres_dsn, schema=pg_schema)


class _SQLAlchemyAsyncpg(_Postgres):
    driver = "sqlalchemy+asyncpg"


class _SQLAlchemyPsycopg(_Postgres):
    driver = "sqlalchemy+psycopg"


class _Asyncpg(_Postgres):
    driver = "asyncpg"


class _MariaDB(_SQLStore):
    driver: str

    @pytest.fixture(autouse=True)
    def _database(self, mysql_database: str) -> None:
        self.flavour = Flavour(self.driver, mysql_database)


class _SQLAlchemyAsyncmy(_MariaDB):
    driver = "mysql+asyncmy"


class _SQLAlchemyAiomysql(_MariaDB):
    driver = "mysql+aiomysql"


class TestSQLAlchemySQLiteConformance(_SQLite, StrictStoreConformance):
    pass


class TestSQLAlchemyAsyncpgConformance(_SQLAlchemyAsyncpg, StrictStoreConformance):
    pass


class TestSQLAlchemyPsycopgConformance(_SQLAlchemyPsycopg, StrictStoreConformance):
    pytestmark = pytest.mark.slow


class TestAsyncpgStoreConformance(_Asyncpg, StrictStoreConformance):
    pass


class TestSQLAlchemySQLiteAttachmentIndex(_SQLite, AttachmentIndexConformance):
    pass


class TestSQLAlchemyAsyncpgAttachmentIndex(_SQLAlchemyAsyncpg, AttachmentIndexConformance):
    pass


class TestSQLAlchemyPsycopgAttachmentIndex(_SQLAlchemyPsycopg, AttachmentIndexConformance):
    pass


class TestAsyncpgStoreAttachmentIndex(_Asyncpg, AttachmentIndexConformance):
    pass


class TestSQLAlchemyAsyncmyMariaDBConformance(_SQLAlchemyAsyncmy, StrictStoreConformance):
    pass


class TestSQLAlchemyAiomysqlMariaDBConformance(_SQLAlchemyAiomysql, StrictStoreConformance):
    pytestmark = pytest.mark.slow


class TestSQLAlchemyAsyncmyMariaDBAttachmentIndex(_SQLAlchemyAsyncmy, AttachmentIndexConformance):
    pass


class TestSQLAlchemyAiomysqlMariaDBAttachmentIndex(_SQLAlchemyAiomysql, AttachmentIndexConformance):
    pass


class _PgBouncer(_SQLStore):
    driver: str
    pytestmark = pytest.mark.slow

    @pytest.fixture(autouse=True)
    def _database(self, pgbouncer_dsn: str, postgres_dsn: str, pg_schema: str) -> None:
        self.flavour = Flavour(
            f"{self.driver}@pgbouncer", pgbouncer_dsn, schema=pg_schema, admin_dsn=postgres_dsn
        )


class TestSQLAlchemyAsyncpgPgBouncerConformance(_PgBouncer, StrictStoreConformance):
    driver = "sqlalchemy+asyncpg"


class TestSQLAlchemyPsycopgPgBouncerConformance(_PgBouncer, StrictStoreConformance):
    driver = "sqlalchemy+psycopg"


class TestAsyncpgStorePgBouncerConformance(_PgBouncer, StrictStoreConformance):
    driver = "asyncpg"


class TestAsyncpgStorePgBouncerAttachmentIndex(_PgBouncer, AttachmentIndexConformance):
    driver = "asyncpg"
