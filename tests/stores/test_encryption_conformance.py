"""Every store, encrypted (`EncryptedStore` around `codec=EnvelopeCodec()`), passes the strict
conformance tier and the attachment-index suite: memory, SQLAlchemy on SQLite, PostgreSQL
(asyncpg, psycopg) and MariaDB (asyncmy), and AsyncpgStore.

Encryption sits in the codec, above the driver: the two SQLAlchemy-on-PostgreSQL runs repeat
what the SQLite, MariaDB and AsyncpgStore runs check, so they are `slow` (CI runs them in
`nox -s slow`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatkit_kit.testing import AttachmentIndexConformance, StrictStoreConformance

from . import encryption_support
from .encryption_support import (
    encrypted_memory,
    encrypted_sql,
)
from .sql_support import Flavour

# This module's own databases (tests/stores/encryption_support.py says why).
pg_schema = encryption_support.pg_schema
mysql_database = encryption_support.mysql_database
sqlite_db = encryption_support.sqlite_db


class TestEncryptedMemoryConformance(StrictStoreConformance):
    def make_store(self) -> Any:
        return encrypted_memory()


class TestEncryptedMemoryAttachmentIndex(AttachmentIndexConformance):
    def make_store(self) -> Any:
        return encrypted_memory()


class _EncryptedSQL:
    flavour: Flavour

    async def make_store(self) -> Any:
        return await encrypted_sql(self.flavour)

    async def teardown_store(self, store: Any) -> None:
        await store.store.close()

    async def reopen(self, store: Any) -> Any:
        return await encrypted_sql(self.flavour)


class _SQLite(_EncryptedSQL):
    @pytest.fixture(autouse=True)
    def _database(self, sqlite_db: Path) -> None:
        self.flavour = Flavour("sqlite", None, sqlite_db)


class _Postgres(_EncryptedSQL):
    driver: str

    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str, pg_schema: str) -> None:
        self.flavour = Flavour(self.driver, postgres_dsn, schema=pg_schema)


class _MariaDB(_EncryptedSQL):
    @pytest.fixture(autouse=True)
    def _database(self, mysql_database: str) -> None:
        self.flavour = Flavour("mysql+asyncmy", mysql_database)


class TestEncryptedSQLiteConformance(_SQLite, StrictStoreConformance):
    pass


class TestEncryptedSQLiteAttachmentIndex(_SQLite, AttachmentIndexConformance):
    pass


class TestEncryptedSQLAlchemyAsyncpgConformance(_Postgres, StrictStoreConformance):
    driver = "sqlalchemy+asyncpg"
    pytestmark = pytest.mark.slow


class TestEncryptedSQLAlchemyPsycopgConformance(_Postgres, StrictStoreConformance):
    driver = "sqlalchemy+psycopg"
    pytestmark = pytest.mark.slow


class TestEncryptedAsyncpgStoreConformance(_Postgres, StrictStoreConformance):
    driver = "asyncpg"


class TestEncryptedAsyncpgStoreAttachmentIndex(_Postgres, AttachmentIndexConformance):
    driver = "asyncpg"


class TestEncryptedMariaDBConformance(_MariaDB, StrictStoreConformance):
    pass


class TestEncryptedMariaDBAttachmentIndex(_MariaDB, AttachmentIndexConformance):
    pass
