"""The messages of translated database failures; each SQL driver's translator uses them.

Which class a failure gets is the dialect's decision (`stores.sql.dialects`, one error table
per database); what a driver raises without a database error (sockets, pool and protocol
errors) each driver maps itself.
"""

from __future__ import annotations

from ..errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
)

_CONFIGURATION_HINT = (
    "check the database URL, the role and its password, the database name and the grants; "
    "retrying will not help"
)


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"


def database_error(
    kind: type[DatabaseError], error: BaseException, code: str | None = None
) -> DatabaseError:
    """An error of `kind` whose message explains `error` and what to do about it.

    `code` is the database's error code, kept as the error's `code`.
    """
    translated = _build(kind, _describe(error))
    translated.code = code
    return translated


def _build(kind: type[DatabaseError], cause: str) -> DatabaseError:
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
