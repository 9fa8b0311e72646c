"""The SQL dialects the SQL stores run on, one module per database, and their registry.

`dialect_named("postgresql")` and `dialect_for_backend("mariadb")` look a dialect up; an unknown
name is a `DatabaseConfigurationError`. A new database is one module with a `SQLDialect`
subclass plus one `register_dialect(...)` call (see docs/stores.md, "Adding a database").
"""

from __future__ import annotations

from ....errors import DatabaseConfigurationError
from ..._urls import database_backend
from .base import SQLDialect, sql_literal
from .mysql import MySQLDialect
from .postgresql import PostgreSQLDialect
from .sqlite import SQLiteDialect

__all__ = [
    "MySQLDialect",
    "PostgreSQLDialect",
    "SQLDialect",
    "SQLiteDialect",
    "dialect_for_backend",
    "dialect_for_url",
    "dialect_named",
    "register_dialect",
    "registered_dialects",
    "sql_literal",
]

_BY_NAME: dict[str, SQLDialect] = {}
_BY_BACKEND: dict[str, SQLDialect] = {}


def register_dialect(dialect: SQLDialect) -> SQLDialect:
    """Make `dialect` known by its name and its SQLAlchemy backend names; returns it."""
    _BY_NAME[dialect.name] = dialect
    for backend in dialect.backends:
        _BY_BACKEND[backend] = dialect
    return dialect


def registered_dialects() -> tuple[SQLDialect, ...]:
    return tuple(_BY_NAME.values())


def _lookup(table: dict[str, SQLDialect], key: str, unknown: str) -> SQLDialect:
    dialect = table.get(key)
    if dialect is None:
        supported = ", ".join(sorted({d.title for d in _BY_NAME.values()}))
        raise DatabaseConfigurationError(f"{unknown}; the SQL stores support {supported}")
    return dialect


def dialect_named(name: str | SQLDialect) -> SQLDialect:
    """The registered dialect called `name` (a dialect passes through)."""
    if isinstance(name, SQLDialect):
        return name
    return _lookup(_BY_NAME, name, f"no SQL dialect named {name!r}")


def dialect_for_backend(backend: str) -> SQLDialect:
    """The dialect serving SQLAlchemy backend `backend` (engine.dialect.name, URL scheme)."""
    return _lookup(_BY_BACKEND, backend, f"no SQL dialect serves {backend!r} engines")


def dialect_for_url(url: str) -> SQLDialect:
    """The dialect of a database URL (ValueError for a URL no dialect serves)."""
    backend, _driver = database_backend(url)
    return dialect_for_backend(backend)


POSTGRESQL = register_dialect(PostgreSQLDialect())
SQLITE = register_dialect(SQLiteDialect())
MYSQL = register_dialect(MySQLDialect())
