"""Each backend's one error translator, on driver exceptions that are hard to provoke live."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import psycopg
import pytest
from sqlalchemy import exc

from chatkit_kit.errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    DeadlockError,
)
from chatkit_kit.stores import asyncpg as asyncpg_store
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore


def _pg(cls: type[Exception], message: str = "x") -> Exception:
    return cls(message)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        # Raised by the pool's release after a killed backend, once the write was applied.
        (
            asyncpg.exceptions.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress"
            ),
            DatabaseUnavailableError,
        ),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed"), DatabaseUnavailableError),
        (asyncpg.exceptions.InterfaceError("connection is closed"), DatabaseUnavailableError),
        (_pg(asyncpg.exceptions.AdminShutdownError), DatabaseUnavailableError),
        (_pg(asyncpg.exceptions.ReadOnlySQLTransactionError), DatabaseUnavailableError),
        (_pg(asyncpg.exceptions.TooManyConnectionsError), DatabaseUnavailableError),
        (_pg(asyncpg.exceptions.QueryCanceledError), DatabaseTimeoutError),
        (_pg(asyncpg.exceptions.LockNotAvailableError), DatabaseTimeoutError),
        (_pg(asyncpg.exceptions.InvalidCatalogNameError), DatabaseConfigurationError),
        (_pg(asyncpg.exceptions.InvalidPasswordError), DatabaseConfigurationError),
        (_pg(asyncpg.exceptions.InsufficientPrivilegeError), DatabaseConfigurationError),
        (_pg(asyncpg.exceptions.UndefinedTableError), DatabaseConfigurationError),
        (_pg(asyncpg.exceptions.DeadlockDetectedError), DeadlockError),
        (_pg(asyncpg.exceptions.SerializationError), DeadlockError),
        (_pg(asyncpg.exceptions.ProgramLimitExceededError), DatabaseError),
        (ConnectionRefusedError(111, "refused"), DatabaseUnavailableError),
        (
            asyncpg.exceptions.ClientConfigurationError("sslmode must be one of ..."),
            DatabaseConfigurationError,
        ),
        (asyncio.TimeoutError(), DatabaseUnavailableError),
    ],
    ids=lambda v: type(v).__name__,
)
def test_asyncpg_translator(error: Exception, kind: type[DatabaseError]) -> None:
    translated = asyncpg_store._translate(error)
    assert type(translated) is kind, translated


def test_asyncpg_translator_leaves_other_errors_alone() -> None:
    assert asyncpg_store._translate(ValueError("ours")) is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), DatabaseTimeoutError),
        (
            exc.OperationalError("SELECT 1", {}, psycopg.errors.QueryCanceled("statement timeout")),
            DatabaseTimeoutError,
        ),
        (
            exc.OperationalError("SELECT 1", {}, psycopg.errors.SerializationFailure("x")),
            DeadlockError,
        ),
        (
            exc.OperationalError("SELECT 1", {}, psycopg.errors.DeadlockDetected("x")),
            DeadlockError,
        ),
        (
            exc.OperationalError(
                None, None, psycopg.OperationalError('FATAL: database "x" does not exist')
            ),
            DatabaseConfigurationError,
        ),
        (
            exc.OperationalError(None, None, psycopg.OperationalError("Connection refused")),
            DatabaseUnavailableError,
        ),
        (
            exc.DBAPIError("SELECT 1", {}, Exception("closed"), connection_invalidated=True),
            DatabaseUnavailableError,
        ),
        (exc.ResourceClosedError("closed result"), DatabaseError),
    ],
    ids=lambda v: type(v).__name__,
)
def test_sqlalchemy_translator_on_postgresql(error: Exception, kind: type[DatabaseError]) -> None:
    store: SQLAlchemyStore[object] = SQLAlchemyStore.from_url("postgresql+psycopg://u@h/d")
    translated = store._translate(error)
    assert type(translated) is kind, translated
    assert store._translate(KeyError("ours")) is None


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("database is locked", DatabaseTimeoutError),
        ("unable to open database file", DatabaseConfigurationError),
        ("attempt to write a readonly database", DatabaseConfigurationError),
        ("database disk image is malformed", DatabaseError),
    ],
)
async def test_sqlalchemy_translator_on_sqlite(message: str, kind: type[DatabaseError]) -> None:
    async with SQLAlchemyStore.from_url("sqlite://") as store:
        error = exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))
        assert type(store._translate(error)) is kind
