"""Database URLs: one resolution rule for `SQLAlchemyStore.from_url`, the CLI and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from .._optional import is_installed
from ..errors import MissingDependencyError


@dataclass(frozen=True)
class _Driver:
    name: str  # the SQLAlchemy driver name after "+"
    module: str  # what must be importable
    extra: str  # the chatkit-kit extra that installs it


_DRIVERS: dict[str, tuple[_Driver, ...]] = {
    # In order of preference when a URL names no driver.
    "postgresql": (
        _Driver("asyncpg", "asyncpg", "asyncpg"),
        _Driver("psycopg", "psycopg", "psycopg"),
    ),
    "sqlite": (_Driver("aiosqlite", "aiosqlite", "sqlalchemy"),),
    # asyncmy is the mysql extra's driver; aiomysql works too (docs/stores.md compares them).
    "mysql": (_Driver("asyncmy", "asyncmy", "mysql"), _Driver("aiomysql", "aiomysql", "mysql")),
}
_BACKENDS = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
}
_EXAMPLES = (
    "postgresql://user@host/db, postgresql+psycopg://..., mysql://user@host/db or sqlite:///path.db"
)


def redact_database_url(url: str) -> str:
    """`url` with its password replaced by `***`, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def database_backend(url: str) -> tuple[str, str | None]:
    """The backend ("postgresql", "mysql" or "sqlite") and the driver named in `url` (None if none).

    Raises ValueError for anything that is not a database URL chatkit-kit supports.
    """
    if not isinstance(url, str):
        raise TypeError(f"a database URL must be a str, got {type(url).__name__}")
    scheme, separator, _rest = url.partition("://")
    if not separator or not scheme:
        raise ValueError(
            f"{redact_database_url(url)!r} is not a database URL; use for example {_EXAMPLES}"
        )
    name, _plus, driver = scheme.lower().partition("+")
    backend = _BACKENDS.get(name)
    if backend is None:
        raise ValueError(f"unsupported database URL scheme {scheme!r}; use for example {_EXAMPLES}")
    if driver and driver not in {d.name for d in _DRIVERS[backend]}:
        supported = ", ".join(f"{backend}+{d.name}://" for d in _DRIVERS[backend])
        raise ValueError(
            f"database URL scheme {scheme!r} names a driver chatkit-kit cannot use "
            f"(stores are async); use {supported} or {backend}:// to pick an installed one"
        )
    return backend, driver or None


def resolve_database_url(url: str) -> str:
    """The SQLAlchemy async URL for `url`, picking an installed driver when it names none.

    `postgres://` and `postgresql://` become `postgresql+asyncpg://` when asyncpg is installed,
    else `postgresql+psycopg://`; `mysql://` (and `mariadb://`) `mysql+asyncmy://`, else
    `mysql+aiomysql://`; `sqlite://` becomes `sqlite+aiosqlite://`. A URL that names its
    driver keeps it. Raises ValueError for an unsupported URL and MissingDependencyError, naming
    the extra to install, when the driver it needs is missing. Everything after the scheme
    (credentials, host, database, query) is kept as is.
    """
    backend, driver = database_backend(url)
    scheme, _separator, rest = url.partition("://")
    # mariadb:// keeps SQLAlchemy's MariaDB dialect (the same store on the same tables).
    head = "mariadb" if scheme.lower().startswith("mariadb") else backend
    candidates = _DRIVERS[backend]
    if driver is not None:
        chosen = next(d for d in candidates if d.name == driver)
        if not is_installed(chosen.module):
            raise MissingDependencyError(chosen.module, chosen.extra, f"a {backend}+{driver} URL")
        return f"{head}+{driver}://{rest}"
    for candidate in candidates:
        if is_installed(candidate.module):
            return f"{head}+{candidate.name}://{rest}"
    first = candidates[0]
    others = candidates[1:]
    raise MissingDependencyError(
        first.module,
        first.extra,
        f"a {backend}:// URL",
        alternative=others[0].extra if others else None,
    )
