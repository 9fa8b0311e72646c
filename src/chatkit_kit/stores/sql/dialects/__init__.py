"""The SQL dialects the SQL stores run on, one module per database, and their registry.

`dialect_named("postgresql")` and `dialect_for_backend("mariadb")` look a dialect up; an unknown
name is a `DatabaseConfigurationError`; `dialect_for_url` and `resolve_database_url` read a
database URL by the schemes the dialects declare. A new database is one module with a
`SQLDialect` subclass plus one `register_dialect(...)` call (see docs/stores.md, "Adding a
database").
"""

from __future__ import annotations

from ....errors import DatabaseConfigurationError
from ..._urls import redact_database_url
from .base import SQLDialect, URLDriver, sql_literal
from .mysql import MySQLDialect
from .postgresql import PostgreSQLDialect
from .sqlite import SQLiteDialect

__all__ = [
    "MySQLDialect",
    "PostgreSQLDialect",
    "SQLDialect",
    "SQLiteDialect",
    "URLDriver",
    "dialect_for_backend",
    "dialect_for_url",
    "dialect_named",
    "register_dialect",
    "registered_dialects",
    "resolve_database_url",
    "sql_literal",
    "url_forms",
]

_BY_NAME: dict[str, SQLDialect] = {}
_BY_BACKEND: dict[str, SQLDialect] = {}
_BY_SCHEME: dict[str, SQLDialect] = {}


def register_dialect(dialect: SQLDialect) -> SQLDialect:
    """Make `dialect` known by its name, its SQLAlchemy backend names and its URL schemes;
    returns it."""
    _BY_NAME[dialect.name] = dialect
    for backend in dialect.backends:
        _BY_BACKEND[backend] = dialect
    for scheme in dialect.url_schemes:
        _BY_SCHEME[scheme] = dialect
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


def url_forms() -> str:
    """The URL forms of every registered dialect, for help texts (the CLI's DATABASE_URL).

    Per dialect, its title, then each of its schemes and `scheme+driver` forms; then examples.
    """
    parts = []
    for dialect in _BY_NAME.values():
        schemes = list(dialect.url_schemes)
        if not schemes:
            continue
        forms = [f"{scheme}://..." for scheme in schemes]
        forms += [f"{schemes[0]}+{driver.name}://..." for driver in dialect.drivers]
        parts.append(f"{dialect.title}: {', '.join(forms)}")
    examples = _examples()
    return "; ".join(parts) + (f" (e.g. {examples})" if examples else "")


def _examples() -> str:
    examples = [d.url_example for d in _BY_NAME.values() if d.url_example]
    return " or ".join([", ".join(examples[:-1]), examples[-1]] if len(examples) > 1 else examples)


def _split(url: str) -> tuple[SQLDialect, str, str | None, str]:
    """The dialect, scheme, driver (None if none) and the rest after `://` of a database URL.

    Raises ValueError for anything that is not a database URL of a registered dialect.
    """
    if not isinstance(url, str):
        raise TypeError(f"a database URL must be a str, got {type(url).__name__}")
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme:
        raise ValueError(
            f"{redact_database_url(url)!r} is not a database URL; use for example {_examples()}"
        )
    name, _plus, driver = scheme.lower().partition("+")
    dialect = _BY_SCHEME.get(name)
    if dialect is None:
        raise ValueError(
            f"unsupported database URL scheme {scheme!r}; use for example {_examples()}"
        )
    if driver and driver not in {d.name for d in dialect.drivers}:
        supported = ", ".join(f"{dialect.name}+{d.name}://" for d in dialect.drivers)
        raise ValueError(
            f"database URL scheme {scheme!r} names a driver chatkit-kit cannot use "
            f"(stores are async); use {supported} or {dialect.name}:// to pick an installed one"
        )
    return dialect, name, driver or None, rest


def dialect_for_url(url: str) -> SQLDialect:
    """The dialect of a database URL (ValueError for a URL no registered dialect serves)."""
    return _split(url)[0]


def resolve_database_url(url: str) -> str:
    """The SQLAlchemy async URL for `url`, picking an installed driver when it names none.

    The URL's scheme picks the registered dialect (`SQLDialect.url_schemes`), which picks the
    driver (`SQLDialect.drivers`): `postgres://` and `postgresql://` become
    `postgresql+asyncpg://` when asyncpg is installed, else `postgresql+psycopg://`; `mysql://`
    (and `mariadb://`) `mysql+asyncmy://`, else `mysql+aiomysql://`; `sqlite://` becomes
    `sqlite+aiosqlite://`. A URL that names its driver keeps it. Raises ValueError for an
    unsupported URL and MissingDependencyError, naming the extra to install, when the driver it
    needs is missing. Everything after the scheme (credentials, host, database, query) is kept
    as is.
    """
    dialect, scheme, driver, rest = _split(url)
    return dialect.sqlalchemy_url(scheme, driver, rest)


POSTGRESQL = register_dialect(PostgreSQLDialect())
SQLITE = register_dialect(SQLiteDialect())
MYSQL = register_dialect(MySQLDialect())
