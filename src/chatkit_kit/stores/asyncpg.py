"""`AsyncpgStore`: the ChatKit store on an asyncpg connection pool (PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Generic

from chatkit.store import TContext
from typing_extensions import Self

from .._optional import require
from ..errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
)
from . import _deadline, _schema
from ._asyncpg_runner import AsyncpgRunner
from ._codec import StoreCodec
from ._dberrors import database_error
from ._deadline import DEFAULT_STATEMENT_TIMEOUT_SECONDS, StatementTimedOut, check_statement_timeout
from ._rules import OwnerResolver
from ._sqlstore import SQLStoreBase
from .sql.dialects import POSTGRESQL
from .sql.statements import NumberedStatements

asyncpg = require("asyncpg", "asyncpg", "AsyncpgStore")


_RELEASING: set[asyncio.Future[Any]] = set()
"""Releases of connections acquired for calls cancelled while they waited."""

_LIVE_FIRST = tuple(map(int, re.findall(r"\d+", asyncpg.__version__)[:2])) >= (0, 32)
"""asyncpg 0.32+ pools hand out a live idle connection before one that must connect."""

DEFAULT_POOL_TIMEOUT_SECONDS = 30.0
"""How long a call waits for a free pooled connection (SQLAlchemy's `pool_timeout` default)."""


class AsyncpgStore(SQLStoreBase[TContext], Generic[TContext]):
    """A ChatKit `Store` on an asyncpg `Pool`, sharing its tables with `SQLAlchemyStore`.

    Pass a pool your app owns, or use `await AsyncpgStore.connect(dsn)`, which creates one that
    `close()` closes. Create the tables with `await store.migrate()` or
    `chatkit-kit migrate DATABASE_URL`.
    """

    def __init__(
        self,
        pool: Any,
        *,
        schema: str | None = None,
        table_prefix: str = _schema.DEFAULT_TABLE_PREFIX,
        owner: OwnerResolver | None = None,
        pool_timeout: float | None = DEFAULT_POOL_TIMEOUT_SECONDS,
        codec: StoreCodec | None = None,
        statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        names = _schema.Names.create(POSTGRESQL, schema, table_prefix)
        super().__init__(names, owner=owner, codec=codec, statement_timeout=statement_timeout)
        if pool_timeout is not None and not pool_timeout > 0:
            raise ValueError(
                f"pool_timeout must be a positive number of seconds or None, got {pool_timeout!r}"
            )
        self.pool_timeout = pool_timeout
        """Seconds a call waits for a free pooled connection before DatabaseTimeoutError."""
        self._pool = pool
        self._owns_pool = False
        self._numbered = NumberedStatements()

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        schema: str | None = None,
        table_prefix: str = _schema.DEFAULT_TABLE_PREFIX,
        owner: OwnerResolver | None = None,
        pool_timeout: float | None = DEFAULT_POOL_TIMEOUT_SECONDS,
        pgbouncer: bool = False,
        codec: StoreCodec | None = None,
        statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
        **pool_kwargs: Any,
    ) -> Self:
        """Create a store that owns a new pool for `dsn`; `close()` closes it.

        `pool_kwargs` go to `asyncpg.create_pool` (e.g. `min_size`, `max_size`). The pool
        skips asyncpg's per-release session reset query (the store sets no session state; an
        open transaction is still rolled back): one round trip per call instead of two. Pass
        `reset=` to run your own. `pgbouncer=True` is for PgBouncer in transaction pooling
        mode: it sets `statement_cache_size=0`, so no named prepared statement outlives its
        call (a pool you create yourself for PgBouncer needs the same setting). `codec` turns
        the ChatKit models into stored text and back (`StoreCodec`; default: `JSONCodec`).

        `statement_timeout` (seconds, default DEFAULT_STATEMENT_TIMEOUT_SECONDS = 30; None: no
        bound) bounds how long a statement waits for PostgreSQL's answer, on the client (so it
        holds on a frozen connection and through PgBouncer): asyncpg then sends the server a
        cancel request and the call raises `DatabaseTimeoutError`. Migrations are not bounded.
        """
        _schema.Names.create(POSTGRESQL, schema, table_prefix)  # fail before connecting
        if pgbouncer:
            pool_kwargs.setdefault("statement_cache_size", 0)
        seconds = check_statement_timeout(statement_timeout)
        if seconds is not None:  # asyncpg's connect timeout (default 60 s)
            pool_kwargs.setdefault("timeout", seconds)
        pool_kwargs.setdefault("reset", _keep_session)
        try:
            pool = await asyncpg.create_pool(dsn, **pool_kwargs)
        except Exception as error:
            translated = _translate(error)
            if translated is None:
                raise
            raise translated from error
        store = cls(
            pool,
            schema=schema,
            table_prefix=table_prefix,
            owner=owner,
            pool_timeout=pool_timeout,
            codec=codec,
            statement_timeout=statement_timeout,
        )
        store._owns_pool = True
        return store

    @property
    def pool(self) -> Any:
        """The asyncpg pool the store runs on."""
        return self._pool

    async def close(self) -> None:
        """Close the pool if `connect` created it; a pool you passed in stays open."""
        if self._owns_pool:
            await self._pool.close()

    # The backend seam: one connection primitive, one error translator

    async def _acquire(self) -> Any:
        pool = self._pool
        if _LIVE_FIRST:
            if pool.get_idle_size():
                # The pool hands out the idle live connection at once: no wait, no connect,
                # nothing for a task or a timer to guard (most calls).
                return await pool.acquire()
            if pool.get_size() >= pool.get_max_size():
                # Every connection is live and busy: the acquire waits in the pool's queue for
                # the next one released (a wait that is safe to cancel), and connects nothing.
                if self.pool_timeout is None:
                    return await pool.acquire()
                try:
                    return await _deadline.bounded(pool.acquire(), self.pool_timeout)
                except StatementTimedOut as error:
                    raise self._pool_timeout_error() from error
        # Connecting: in a task of its own, so a cancelled call never interrupts a connect
        # mid-handshake (asyncpg then logs "Future exception was never retrieved"); a
        # connection acquired after the call was cancelled goes back to the pool.
        task = asyncio.ensure_future(pool.acquire(timeout=self.pool_timeout))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._release_when_acquired)
            raise
        except asyncio.TimeoutError as error:
            raise self._pool_timeout_error() from error

    def _pool_timeout_error(self) -> DatabaseError:
        waited = TimeoutError(
            f"no pooled connection became free within {self.pool_timeout} s "
            f"(pool max_size {self._pool.get_max_size()})"
        )
        return database_error(DatabaseTimeoutError, waited)

    def _release_when_acquired(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is None:
            _RELEASING.add(release := asyncio.ensure_future(self._pool.release(task.result())))
            release.add_done_callback(_RELEASING.discard)

    @asynccontextmanager
    async def _connect(self, *, transaction: bool) -> AsyncIterator[AsyncpgRunner]:
        conn = await self._acquire()
        release_timeout = None
        try:
            try:
                if transaction:
                    async with conn.transaction():
                        yield AsyncpgRunner(self._numbered, conn)
                else:
                    yield AsyncpgRunner(self._numbered, conn)
            except asyncpg.PostgresError as error:
                # The server answered, so the pool's reset on release cleans up; but a
                # connection to a server going away or turned read-only (failover) is dropped.
                if isinstance(_translate(error), DatabaseUnavailableError):
                    conn.terminate()
                raise
            except asyncio.CancelledError:
                # asyncpg sends the server a cancel request, and the pool's release (shielded
                # from this cancellation) waits for it to complete and rolls back an open
                # transaction: the connection goes back clean. Terminating it here instead
                # would abort that cancel request mid-connect.
                raise
            except StatementTimedOut:
                # The statement was cancelled the same way, but the server may not be answering
                # at all: the release waits for the cancel and the rollback at most as long
                # again (then asyncpg terminates the connection).
                release_timeout = self.statement_timeout
                raise
            except BaseException:
                # A client-side or protocol failure: the connection's state is unknown, so
                # close it instead of handing it back to the pool.
                conn.terminate()
                raise
        finally:
            if release_timeout is None:
                # Bounded as asyncpg bounds it after `acquire(timeout=pool_timeout)`.
                await self._pool.release(conn, timeout=self.pool_timeout)
            else:
                # After a statement timeout: a release that times out too has terminated the
                # connection; the timeout is the error to report.
                with contextlib.suppress(Exception):
                    await self._pool.release(conn, timeout=release_timeout)

    def _translate(self, error: Exception) -> DatabaseError | None:
        return _translate(error)


async def _keep_session(connection: Any) -> None:
    """Pool `reset` hook: nothing to undo (asyncpg itself still rolls back an open transaction)."""


def _translate(error: Exception) -> DatabaseError | None:
    """The one place asyncpg's exceptions become `chatkit_kit.errors`."""
    if isinstance(error, asyncpg.PostgresError):
        if isinstance(error, asyncpg.exceptions.PostgresConnectionError):
            return database_error(DatabaseUnavailableError, error)
        return POSTGRESQL.translate(error)
    if isinstance(error, asyncpg.exceptions.ClientConfigurationError):  # e.g. a bad sslmode
        return database_error(DatabaseConfigurationError, error)
    if isinstance(error, (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)):
        # "connection is closed", "another operation is in progress", a failed pool release
        # (which may come after the call was applied).
        return database_error(DatabaseUnavailableError, error)
    if isinstance(error, (OSError, asyncio.TimeoutError)):  # refused, reset, connect timeout
        return database_error(DatabaseUnavailableError, error)
    return None
