"""Helpers for the encryption tests: a fixed test keyring and encrypted stores of each kind."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatkit_kit.encryption import EncryptedStore, EnvelopeCodec, LocalKeyProvider
from chatkit_kit.stores import MemoryStore

from .sql_support import (
    Flavour,
    migrated_mysql_database,
    migrated_pg_schema,
    migrated_sqlite_db,
)

MARKER = "zq-plaintext-marker-7f3a"
"""A string no ciphertext or id contains by chance: found in stored bytes, it leaked."""

KEYRING = json.dumps(
    {
        "current": "k1",
        "keys": {"k1": base64.b64encode(bytes(range(32))).decode()},
    }
)


def provider() -> LocalKeyProvider:
    return LocalKeyProvider.from_json(KEYRING)


def encrypted_memory(**codec: Any) -> EncryptedStore[Any]:
    return EncryptedStore(MemoryStore(codec=EnvelopeCodec(**codec)), provider())


async def encrypted_sql(flavour: Flavour, **kwargs: Any) -> EncryptedStore[Any]:
    accept_clear = kwargs.pop("accept_clear", False)
    inner = await flavour.make(codec=EnvelopeCodec(accept_clear=accept_clear), **kwargs)
    return EncryptedStore(inner, provider())


# The encryption test modules import these three (`from .encryption_support import pg_schema,
# ...`), which override the session-wide databases of tests/stores/conftest.py for them: their
# encrypted rows must never meet the plain stores' cross-owner reads (orphan sweeps, prune of
# every owner) of the other modules, which cannot decode them.


@pytest.fixture(scope="module")
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A migrated PostgreSQL schema of this module's own."""
    with migrated_pg_schema(postgres_dsn) as schema:
        yield schema


@pytest.fixture(scope="module")
def mysql_database(mariadb_url: str) -> Iterator[str]:
    """A migrated MariaDB database of this module's own."""
    with migrated_mysql_database(mariadb_url) as url:
        yield url


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database of this module's own."""
    return migrated_sqlite_db(tmp_path_factory.mktemp("encrypted-sqlite") / "store.db")
