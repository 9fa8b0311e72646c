"""Classifying database failures into `chatkit_kit.errors`; each SQL backend's translator uses it.

PostgreSQL reports a SQLSTATE with every error, so most of the decision is a table lookup. What a
driver raises without one (sockets, pool and protocol errors) each backend maps itself.
"""

from __future__ import annotations

import re

from ..errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
)

# Exact SQLSTATEs first, then two-character classes.
_BY_SQLSTATE: dict[str, type[DatabaseError]] = {
    "57014": DatabaseTimeoutError,  # query_canceled: statement_timeout (or a cancel request)
    "55P03": DatabaseTimeoutError,  # lock_not_available: lock_timeout, NOWAIT
    "57P01": DatabaseUnavailableError,  # admin_shutdown: pg_terminate_backend, shutdown
    "57P02": DatabaseUnavailableError,  # crash_shutdown
    "57P03": DatabaseUnavailableError,  # cannot_connect_now: starting up, recovering
    "57P05": DatabaseUnavailableError,  # idle_session_timeout
    "25P03": DatabaseUnavailableError,  # idle_in_transaction_session_timeout
    "25006": DatabaseUnavailableError,  # read_only_sql_transaction: a standby after failover
    "53300": DatabaseUnavailableError,  # too_many_connections
    "53000": DatabaseUnavailableError,  # insufficient_resources
    "57P04": DatabaseConfigurationError,  # database_dropped
    "3D000": DatabaseConfigurationError,  # invalid_catalog_name: the database does not exist
    "3F000": DatabaseConfigurationError,  # invalid_schema_name
    "42501": DatabaseConfigurationError,  # insufficient_privilege
    "42P01": DatabaseConfigurationError,  # undefined_table: tables dropped after the check
    "42703": DatabaseConfigurationError,  # undefined_column: tables changed by hand
}
_BY_CLASS: dict[str, type[DatabaseError]] = {
    "08": DatabaseUnavailableError,  # connection_exception
    "28": DatabaseConfigurationError,  # invalid_authorization: role, password, pg_hba
}

_CONFIGURATION_HINT = (
    "check the database URL, the role and its password, the database name and the grants; "
    "retrying will not help"
)


def kind_of_sqlstate(sqlstate: str | None) -> type[DatabaseError]:
    """The error class for a PostgreSQL SQLSTATE (DatabaseError when none fits)."""
    if not sqlstate:
        return DatabaseError
    return _BY_SQLSTATE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2]) or DatabaseError


_CONNECT_CONFIGURATION = re.compile(
    r'database "[^"]*" does not exist|role "[^"]*" does not exist|'
    r"password authentication failed|no pg_hba\.conf entry|permission denied|"
    r"unable to open database file|readonly database|no such table",
    re.IGNORECASE,
)


def kind_of_message(message: str) -> type[DatabaseError] | None:
    """Configuration errors recognised by their message, for drivers that give no SQLSTATE
    (psycopg while connecting, sqlite3)."""
    return DatabaseConfigurationError if _CONNECT_CONFIGURATION.search(message) else None


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"


def database_error(kind: type[DatabaseError], error: BaseException) -> DatabaseError:
    """An error of `kind` whose message explains `error` and what to do about it."""
    cause = _describe(error)
    if issubclass(kind, DatabaseUnavailableError):
        return kind(
            f"the database connection failed ({cause}); the call may have been applied. "
            "Store writes are idempotent: retry with backoff; the store reconnects on the next call"
        )
    if issubclass(kind, DatabaseTimeoutError):
        return kind(
            f"the database call timed out ({cause}); it was rolled back and not applied. "
            "Retry later, or raise the statement, lock or pool timeout"
        )
    if issubclass(kind, DatabaseConfigurationError):
        return kind(
            f"the database cannot serve this store as configured ({cause}); " + _CONFIGURATION_HINT
        )
    return kind(f"the database rejected the call ({cause}); it was not applied")
