"""The SQL stores' client-side statement timeout: no statement waits longer for an answer.

A server-side timeout (PostgreSQL's `statement_timeout`, MariaDB's `max_statement_time`) cannot
fire on a frozen connection (a network black hole, a server that stopped answering), and a
per-session `SET` does not survive PgBouncer in transaction mode. So the store bounds each
statement on the client: after `statement_timeout` seconds without an answer it gives up, the
driver asks the server to cancel the statement where it can (asyncpg and psycopg send a cancel
request), the connection is discarded, and the call raises `DatabaseTimeoutError`. Whether a
dialect bounds statements this way is its `client_statement_timeout` flag (SQLite, a local
file, bounds its only wait, for another writer's lock, with its busy timeout instead).
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable
from typing import TypeVar

from ..errors import DatabaseTimeoutError

DEFAULT_STATEMENT_TIMEOUT_SECONDS = 30.0
"""How long a store statement waits for the database's answer unless `statement_timeout=`."""

_T = TypeVar("_T")


class StatementTimedOut(Exception):
    """A statement got no answer in time (private: the store raises `DatabaseTimeoutError`).

    Not a `ChatKitKitError`, so a backend's `_connect` discards the connection (its state is
    unknown) instead of returning it to the pool.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer from the database within statement_timeout={seconds:g} s")
        self.seconds = seconds


def check_statement_timeout(seconds: float | None) -> float | None:
    """`seconds` if usable as a statement timeout (a positive number or None); else ValueError."""
    if seconds is None:
        return None
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not seconds > 0
    ):
        raise ValueError(
            f"statement_timeout must be a positive number of seconds or None, got {seconds!r}"
        )
    return float(seconds)


async def bounded(operation: Awaitable[_T], seconds: float) -> _T:
    """Await `operation`; cancel it and raise StatementTimedOut after `seconds`."""
    if sys.version_info >= (3, 11):
        timeout = asyncio.timeout(seconds)
        try:
            async with timeout:
                return await operation
        except TimeoutError:
            if timeout.expired():
                raise StatementTimedOut(seconds) from None
            raise  # the driver's own TimeoutError
    try:
        return await asyncio.wait_for(operation, seconds)
    except asyncio.TimeoutError:
        raise StatementTimedOut(seconds) from None


def timeout_error(error: StatementTimedOut) -> DatabaseTimeoutError:
    """The `DatabaseTimeoutError` a call raises after a client-side statement timeout."""
    translated = DatabaseTimeoutError(
        f"the database call timed out ({error}): the store gave up on the statement and "
        "discarded its connection (the driver asked the server to cancel it where it can). A "
        "write may still have been applied (its commit may have happened, its answer not "
        "arrived): store writes are idempotent, so retry with backoff; raise the store's "
        "statement_timeout for calls that need longer"
    )
    translated.may_have_applied = True
    return translated
