"""`SQLAlchemyStore`: the ChatKit store on a SQLAlchemy 2 async engine.

SQLite (aiosqlite), PostgreSQL (asyncpg, psycopg) and MySQL/MariaDB (asyncmy, aiomysql). This
module connects and runs statements; what differs between the databases is their dialect's
(`stores.sql.dialects`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar

from chatkit.store import TContext
from typing_extensions import Self

from .._optional import require
from ..errors import (
    ChatKitKitError,
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
)
from . import _deadline, _eager, _schema
from ._asyncpg_runner import AsyncpgRunner
from ._codec import StoreCodec
from ._dberrors import database_error
from ._deadline import DEFAULT_STATEMENT_TIMEOUT_SECONDS
from ._rules import OwnerResolver
from ._sqlstore import Connection, Params, Row, SQLStoreBase
from ._urls import redact_database_url
from .sql.dialects import (
    SQLITE,
    SQLDialect,
    dialect_for_backend,
    dialect_for_url,
    dialect_named,
    resolve_database_url,
)
from .sql.dialects.sqlite import BUSY_TIMEOUT_SECONDS
from .sql.statements import NumberedStatements, PyformatStatements

require("sqlalchemy", "sqlalchemy", "SQLAlchemyStore")

from sqlalchemy import TextClause, exc, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine  # noqa: E402
from sqlalchemy.pool import PoolProxiedConnection  # noqa: E402
from sqlalchemy.util import greenlet_spawn  # noqa: E402

SQLITE_BUSY_TIMEOUT_SECONDS = BUSY_TIMEOUT_SECONDS
"""How long a SQLite connection made by `from_url` waits for another writer's lock."""


class SQLAlchemyStore(SQLStoreBase[TContext], Generic[TContext]):
    """A ChatKit `Store` on SQLAlchemy: SQLite (aiosqlite), PostgreSQL (asyncpg or psycopg) or
    MySQL/MariaDB (asyncmy or aiomysql).

    Pass an `AsyncEngine` your app owns, or use `SQLAlchemyStore.from_url(...)`, which creates
    one that `close()` disposes. Create the tables with `await store.migrate()` or
    `chatkit-kit migrate DATABASE_URL`. On PostgreSQL it shares its tables with `AsyncpgStore`.
    `dialect` (a registered `SQLDialect` or its name) defaults to the one serving the engine's
    backend; `from_url` passes the dialect whose URL scheme it was given.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        table_prefix: str = _schema.DEFAULT_TABLE_PREFIX,
        owner: OwnerResolver | None = None,
        pgbouncer: bool = False,
        codec: StoreCodec | None = None,
        statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
        dialect: SQLDialect | str | None = None,
    ) -> None:
        if dialect is None:
            dialect = dialect_for_backend(engine.url.get_backend_name())
        else:
            dialect = dialect_named(dialect)
        names = _schema.Names.create(dialect, schema, table_prefix)
        super().__init__(names, owner=owner, codec=codec, statement_timeout=statement_timeout)
        self._engine = engine
        self._direct = self._dialect.direct_driver
        # Behind PgBouncer in transaction mode the asyncpg driver prepares a statement and
        # executes it in two exchanges, which stay on one server connection only inside a
        # transaction: there every call runs in one.
        self._always_transaction = pgbouncer and engine.dialect.driver == "asyncpg"
        # Every statement but a two-statement delete_thread is atomic on its own, so running
        # without BEGIN/COMMIT saves two round trips per call: single statements run on the
        # engine's connections switched to AUTOCOMMIT, unless the dialect never switches (then
        # every call runs in a transaction), or the engine is in autocommit mode already
        # (`from_url` on SQLite and MySQL; then a transaction is opened by hand).
        self._switch = self._dialect.switch_isolation_per_call
        self._autocommit = False
        self._autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        # An engine given an isolation level as an execution option
        # (`engine.execution_options(isolation_level=...)`) sets it on every connection it
        # hands out, also those of a copy made from it with another level: its connections
        # are switched to AUTOCOMMIT one by one instead (else a single statement would run in
        # a transaction nobody commits, and its write would be rolled back).
        self._switch_each = "isolation_level" in engine.sync_engine.get_execution_options()
        self._owns_engine = False
        self._texts: dict[str, TextClause] = {}
        # On PostgreSQL single statements run on the pooled driver connection itself (asyncpg
        # or psycopg: the dialect's `direct_statement_drivers`), as AsyncpgStore runs them:
        # SQLAlchemy's execution layer (compiled cache, execution context, result processing,
        # a greenlet hop per statement) costs more CPU than the round trip. Engines with
        # execution events or statement logging keep SQLAlchemy's execution, so
        # instrumentation sees every statement.
        driver = engine.dialect.driver
        self._driver_runner = None
        if driver in dialect.direct_statement_drivers and not self._direct:
            self._driver_runner = _DRIVER_RUNNERS.get(driver)
        # So do transactions (delete_thread's two statements, the retention deletes), opened
        # with BEGIN and ended with COMMIT on that connection as SQLAlchemy's own would be,
        # unless the engine sets an isolation level (SQLAlchemy applies it; a plain BEGIN
        # would not) or runs on asyncpg behind PgBouncer (every call is then a transaction on
        # SQLAlchemy's execution, as above).
        self._driver_transactions = (
            self._driver_runner is not None
            and not self._always_transaction
            and not self._switch_each  # (an engine that sets an isolation level)
            and _no_connect_isolation(engine)
        )
        self._numbered = NumberedStatements()
        self._pyformat = PyformatStatements()
        # A checkout (pool wait, connect, the pre-ping of MySQL engines) on a frozen network
        # would wait for TCP to give up: bounded by the pool timeout plus the statement timeout.
        self._checkout_seconds: float | None = None
        if self.statement_timeout is not None and dialect.client_statement_timeout:
            pool_timeout = getattr(engine.pool, "timeout", None)
            waits = pool_timeout() if callable(pool_timeout) else 0.0
            self._checkout_seconds = float(waits) + self.statement_timeout

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        schema: str | None = None,
        table_prefix: str = _schema.DEFAULT_TABLE_PREFIX,
        owner: OwnerResolver | None = None,
        pgbouncer: bool = False,
        codec: StoreCodec | None = None,
        statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
        **engine_kwargs: Any,
    ) -> Self:
        """Create a store that owns a new engine for `url`; `close()` disposes it.

        `url` is a database URL as `resolve_database_url` reads it, the same the
        `chatkit-kit migrate` command takes: `sqlite:///chat.db`, `postgresql://user@host/db`
        (or `postgres://`; an installed async driver is picked), or a SQLAlchemy URL naming its
        driver, `postgresql+asyncpg://...`, `postgresql+psycopg://...`,
        `sqlite+aiosqlite:///chat.db`. `mysql://user:password@host/db` (or `mariadb://`) picks
        asyncmy, else aiomysql (or name one: `mysql+asyncmy://`, `mysql+aiomysql://`); MySQL
        connections use utf8mb4 unless the URL sets `charset`, the pool pings a connection
        before handing it out (`pool_pre_ping=True`: MySQL drops idle connections after
        `wait_timeout`), and connections are in autocommit mode (`isolation_level=
        "AUTOCOMMIT"`, `skip_autocommit_rollback=True`): a call is the ping and its statement. The
        tables live in the URL's database. A missing driver raises MissingDependencyError
        naming the extra. Synchronous because it does not connect: errors such as a wrong
        password surface on the first call (`AsyncpgStore.connect` is
        async because asyncpg opens its pool eagerly). `engine_kwargs` go to
        `create_async_engine`. SQLite files are switched to WAL mode and wait up to
        SQLITE_BUSY_TIMEOUT_SECONDS for locks (override with `connect_args={"timeout": seconds}`);
        their connections are in autocommit mode from the start, so a call switches no
        isolation level.

        `pgbouncer=True` is for PostgreSQL behind PgBouncer in transaction pooling mode (any
        version): no server-side prepared statement is reused across transactions (psycopg:
        `prepare_threshold=None`; asyncpg: no statement caches, uniquely named statements,
        every call in its own transaction).

        `codec` turns the ChatKit models into stored text and back (`StoreCodec`; default: the
        JSON of `JSONCodec`).

        `statement_timeout` (seconds, default DEFAULT_STATEMENT_TIMEOUT_SECONDS = 30; None: no
        bound) bounds how long a statement waits for the database's answer; then the call
        raises `DatabaseTimeoutError`. On PostgreSQL and MySQL/MariaDB the store bounds it on
        the client (it works on a frozen connection and through PgBouncer; the driver asks the
        server to cancel the statement where it can, and the connection is discarded); on
        SQLite it is the busy timeout (how long a write waits for another writer's lock;
        `connect_args={"timeout": ...}` still wins). Migrations are not bounded.
        """
        dialect = dialect_for_url(url)
        resolved = resolve_database_url(url)
        try:
            parsed = make_url(resolved)
        except exc.ArgumentError as error:
            raise ValueError(
                f"cannot parse the database URL {redact_database_url(url)!r}: {error}"
            ) from None
        parsed = dialect.configure_url(parsed)
        dialect.statement_timeout_arguments(
            parsed.get_driver_name(),
            engine_kwargs,
            _deadline.check_statement_timeout(statement_timeout),
        )
        dialect.engine_arguments(parsed.get_driver_name(), engine_kwargs, pgbouncer=pgbouncer)
        try:
            engine = create_async_engine(parsed, **engine_kwargs)
        except exc.ArgumentError as error:
            raise ValueError(f"cannot create an engine for {parsed!r}: {error}") from error
        dialect.configure_engine(engine, engine_kwargs)
        try:
            store = cls(
                engine,
                schema=schema,
                table_prefix=table_prefix,
                owner=owner,
                pgbouncer=pgbouncer,
                codec=codec,
                statement_timeout=statement_timeout,
                dialect=dialect,
            )
        except BaseException:
            engine.sync_engine.dispose()
            raise
        store._owns_engine = True
        if engine_kwargs.get("isolation_level") == "AUTOCOMMIT":
            store._autocommit = True  # already autocommit: no per-call switch
        return store

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store runs on."""
        return self._engine

    async def close(self) -> None:
        """Dispose the engine if `from_url` created it; an engine you passed in stays open.

        Connections of cancelled calls still being returned to the pool are waited for first
        (up to _DRIVER_CANCEL_WAIT_SECONDS).
        """
        if _SETTLING:
            await asyncio.wait(list(_SETTLING), timeout=_DRIVER_CANCEL_WAIT_SECONDS)
        if self._owns_engine:
            await self._engine.dispose()

    # The backend seam: one connection primitive, one error translator

    def _text(self, sql: str) -> TextClause:
        clause = self._texts.get(sql)
        if clause is None:
            clause = self._texts[sql] = text(sql)
        return clause

    def _instrumented(self) -> bool:
        """Whether the engine has execution events or logs statements (then every statement
        goes through SQLAlchemy's execution)."""
        sync = self._engine.sync_engine  # (the AUTOCOMMIT copy has a listener of its own)
        # SQLAlchemy's own checks (private; tests/stores/test_sqlalchemy_driver_path.py pins
        # them): should one go away, every statement takes SQLAlchemy's execution.
        should_log = getattr(sync, "_should_log_info", None)
        return bool(
            getattr(sync, "_has_events", True)
            or getattr(sync.dialect, "_has_events", True)
            or should_log is None
            or should_log()
        )

    def _driver_runner_for(self, transaction: bool) -> _RunnerFactory | None:
        """The runner of a call straight on the pooled driver connection, if it can run so.

        SQLite: engines in autocommit mode (`from_url`; transactions opened by hand).
        PostgreSQL: single statements, unless the engine is instrumented; transactions too
        (opened by hand), unless it also sets an isolation level or is asyncpg behind
        PgBouncer.
        """
        if self._direct:
            return _DriverConnection if self._autocommit else None
        if self._driver_runner is None or self._instrumented():
            return None
        if transaction and not self._driver_transactions:
            return None
        return self._driver_runner

    def _after_disconnect(self, fairy: PoolProxiedConnection, error: Exception) -> None:
        """After a lost connection, have the pool replace every connection made before it, as
        SQLAlchemy does for the statements it runs (they went to the same server, which went
        away or restarted)."""
        dialect = self._engine.dialect
        try:
            lost = dialect.is_disconnect(error, fairy.dbapi_connection, None)  # type: ignore[arg-type]
        except Exception:
            lost = False
        invalidate = getattr(self._engine.pool, "_invalidate", None)  # the pool's own
        if lost and invalidate is not None:
            invalidate(fairy, error, _checkin=False)

    @asynccontextmanager
    async def _connect(self, *, transaction: bool) -> AsyncIterator[Connection]:
        transaction = transaction or self._always_transaction
        runner = self._driver_runner_for(transaction)
        if runner is not None:
            # The pool's connection itself, without a SQLAlchemy Connection around it: no
            # execution options, isolation level switch or engine events per call (pool
            # events and pre-ping still run). It goes back to the pool only with no
            # transaction open, which the driver tells without a round trip, so the pool's
            # reset (a ROLLBACK) is skipped.
            fairy = await _checkout(self._engine.raw_connection, self._checkout_seconds)
            refused: ChatKitKitError | None = None
            try:
                driver = runner(self, fairy)
                await driver.open()
                try:
                    async with _by_hand(driver, self._dialect.begin, transaction):
                        yield driver
                except ChatKitKitError as error:  # (its transaction was rolled back)
                    refused = error
                await driver.close()
                idle = driver.idle()
            except BaseException as error:
                # The connection's state is unknown (an error mid-protocol, a cancelled call):
                # never hand it back to the pool, where it could hold a transaction or a lock.
                if isinstance(error, Exception):
                    self._after_disconnect(fairy, error)
                await _discard_raw(fairy)
                raise
            if idle:
                await _release_raw(fairy)
            else:  # (never by the store's own statements)
                await _discard_raw(fairy)
            if refused is not None:
                raise refused
            return
        # A direct-driver dialect (SQLite) runs on autocommit connections and opens its
        # transactions by hand (BEGIN IMMEDIATE, since the driver would begin lazily); so does
        # an engine in autocommit mode.
        direct = self._direct
        by_hand = direct or self._autocommit
        switch = self._switch and not self._autocommit and (direct or not transaction)
        switch_each = switch and self._switch_each
        engine = self._autocommit_engine if switch and not switch_each else self._engine
        conn = await _checkout(engine.connect, self._checkout_seconds)
        try:
            if switch_each:  # (the pool restores the engine's own level on return)
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            if direct:
                # Straight to the driver: one hop to its thread per statement, not one each
                # for cursor, execute, fetch and close.
                raw = _DriverConnection(self, await conn.get_raw_connection())
                async with _by_hand(raw, self._dialect.begin, transaction):
                    yield raw
            elif by_hand:  # an autocommit engine
                wrapped = _Connection(self, conn)
                async with _by_hand(wrapped, self._dialect.begin, transaction):
                    yield wrapped
            elif switch or (not transaction and self._autocommit):
                yield _Connection(self, conn)
            else:
                async with conn.begin():
                    yield _Connection(self, conn)
        except ChatKitKitError:
            await _release(conn)
            raise
        except BaseException:
            # The connection's state is unknown (an error mid-protocol, a cancelled call):
            # never hand it back to the pool, where it could hold a transaction or a lock.
            await _discard(conn)
            raise
        await _release(conn)

    def _translate(self, error: Exception) -> DatabaseError | None:
        dialect = self._dialect
        if isinstance(error, sqlite3.Error):  # the SQLite path runs on the driver directly
            return SQLITE.translate(error)
        if isinstance(error, exc.TimeoutError):  # no pooled connection became free
            return database_error(DatabaseTimeoutError, error)
        if isinstance(error, exc.DBAPIError):
            original = error.orig
            if original is None or error.connection_invalidated:
                return database_error(DatabaseUnavailableError, error)
            return dialect.translate(original)
        if isinstance(error, exc.SQLAlchemyError):
            return database_error(DatabaseError, error)
        if isinstance(error, self._engine.dialect.loaded_dbapi.Error):
            # A checkout of the pool's own connection (`raw_connection`) raises the driver's
            # DB-API errors as they are, where a SQLAlchemy connection wraps them.
            if self._engine.dialect.is_disconnect(error, None, None):
                return database_error(DatabaseUnavailableError, error)
            return dialect.translate(error)
        if isinstance(error, (OSError, asyncio.TimeoutError)):
            # (asyncpg's connect timeout: asyncio.TimeoutError, not an OSError before 3.11)
            return database_error(DatabaseUnavailableError, error)
        module = type(error).__module__.partition(".")[0]
        if module == "asyncpg":
            client = _asyncpg_client_error(error)
            if client is not None:
                return client
        if module in _DRIVER_MODULES:
            # Statements on the driver connection itself (PostgreSQL, SQLite) raise its own
            # errors; SQLAlchemy 2.0 (what Python 3.10 installs) lets some connect-time driver
            # errors through unwrapped, and sets AUTOCOMMIT on a raw MySQL connection without
            # wrapping its errors.
            return dialect.translate(error)
        return None


_DRIVER_MODULES = frozenset({"asyncpg", "psycopg", "asyncmy", "aiomysql", "pymysql"})


def _asyncpg_client_error(error: Exception) -> DatabaseError | None:
    """asyncpg's own (client-side) errors, as AsyncpgStore translates them; None for the
    server's errors (the dialect's table)."""
    asyncpg = sys.modules["asyncpg"]  # (imported: it raised `error`)
    if isinstance(error, asyncpg.exceptions.ClientConfigurationError):  # e.g. a bad sslmode
        return database_error(DatabaseConfigurationError, error)
    if isinstance(error, (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)):
        # "connection is closed", "another operation is in progress" (a connection whose
        # backend was killed mid-call)
        return database_error(DatabaseUnavailableError, error)
    return None


def _no_connect_isolation(engine: AsyncEngine) -> bool:
    """Whether `engine` was made without `create_engine(isolation_level=)` (SQLAlchemy keeps it
    in a private member of the dialect, which tests/stores/test_sqlalchemy_driver_path.py pins;
    should it go away, every engine counts as setting one)."""
    return getattr(engine.sync_engine.dialect, "_on_connect_isolation_level", "unknown") is None


@asynccontextmanager
async def _by_hand(conn: Connection, begin: str, transaction: bool) -> AsyncIterator[None]:
    """A transaction opened and ended by statements, on a connection in autocommit mode."""
    if not transaction:
        yield
        return
    await conn.execute(begin, None)
    try:
        yield
    except _deadline.StatementTimedOut:
        # No ROLLBACK on a connection that stopped answering: it is discarded, which ends the
        # transaction.
        raise
    except Exception:
        await conn.execute("ROLLBACK", None)
        raise
    # (On a cancelled call the connection is discarded, which ends the transaction.)
    await conn.execute("COMMIT", None)


_SETTLING: set[asyncio.Future[Any]] = set()
"""Connection returns still running after the call that started them was cancelled."""

_DRIVER_CANCEL_WAIT_SECONDS = 5.0
"""How long a discarded asyncpg connection waits for its driver's pending cancel requests."""


def _settle(operation: Coroutine[Any, Any, None]) -> Awaitable[None]:
    """Run `operation` (a connection's return to the pool) to its end, whatever happens to the
    call that started it: a cancellation of the caller stops the wait, never the return. (On
    Python 3.11+ one that finishes without waiting, most returns, is done here.)"""
    task = _eager.start_task(operation)
    if task.done():
        return task
    _SETTLING.add(task)
    task.add_done_callback(_SETTLING.discard)
    return asyncio.shield(task)


_Pooled = TypeVar("_Pooled", AsyncConnection, PoolProxiedConnection)


async def _checkout(connect: Callable[[], Awaitable[_Pooled]], seconds: float | None) -> _Pooled:
    """A pooled connection: `connect` is an engine's `connect` (a SQLAlchemy connection) or
    `raw_connection` (the pool's own). Cancelling the caller mid-checkout (mid-connect) lets
    the checkout finish in the background and returns the connection to the pool.

    A checkout taking longer than `seconds` (None: no bound) is cancelled (SQLAlchemy's pool
    checks a record whose checkout failed back in) and raises DatabaseTimeoutError: on a frozen
    network a connect or a pre-ping would otherwise wait for TCP to give up.
    """

    async def checkout() -> _Pooled:
        return await connect()

    task = _eager.start_task(checkout())
    if task.done():  # (Python 3.11+, an idle connection at hand: nothing waited)
        return task.result()
    try:
        if seconds is None:
            return await asyncio.shield(task)
        done, _pending = await asyncio.wait((task,), timeout=seconds)
    except asyncio.CancelledError:
        task.add_done_callback(_return_when_connected)
        raise
    if done:
        return task.result()
    task.cancel()
    task.add_done_callback(_return_when_connected)
    waited = TimeoutError(
        f"no usable connection within {seconds:g} s (pool wait, connect, liveness check)"
    )
    raise database_error(DatabaseTimeoutError, waited)


def _return_when_connected(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is None:
        conn = task.result()
        if isinstance(conn, AsyncConnection):
            _settle(_return(conn))
        else:
            _settle(_return_raw(conn))


async def _release(conn: AsyncConnection) -> None:
    """Return `conn` to the pool after a call; drop it if resetting it fails.

    The reset fails when the connection was lost after the call's work was done (its statement
    autocommitted, or its transaction committed): the call still succeeded. A cancellation of
    the call while the connection is being returned does not interrupt the return.
    """
    await _settle(_return(conn))


async def _return(conn: AsyncConnection) -> None:
    try:
        await conn.close()
    except BaseException:
        await _invalidate(conn)


async def _discard(conn: AsyncConnection) -> None:
    """Invalidate and release `conn` (its pool slot too), even if it is already broken; a
    cancellation of the call meanwhile does not interrupt it."""
    await _settle(_invalidate(conn))


async def _invalidate(conn: AsyncConnection) -> None:
    try:
        await _await_driver_cancellations(_driver_of(conn))
        await conn.invalidate()
    except BaseException:  # a dead connection may fail to close: it is gone either way
        pass
    finally:
        await conn.close()


async def _release_raw(fairy: PoolProxiedConnection) -> None:
    """`_release` for a connection checked out of the pool itself (`raw_connection`) that has
    no transaction open: the pool skips its reset."""
    await _settle(_return_raw(fairy, reset=False))


async def _return_raw(fairy: PoolProxiedConnection, *, reset: bool = True) -> None:
    # (In a greenlet: the pool's reset and its checkin listeners may await the driver.)
    try:
        close_reset = getattr(fairy, "_close_special", None)  # the pool's own, SQLAlchemy 2
        if reset or close_reset is None:
            await greenlet_spawn(fairy.close)
        else:
            await greenlet_spawn(close_reset, True)  # (transaction_reset: nothing to roll back)
    except BaseException:
        await _invalidate_raw(fairy)


async def _discard_raw(fairy: PoolProxiedConnection) -> None:
    """`_discard` for a connection checked out of the pool itself."""
    await _settle(_invalidate_raw(fairy))


async def _invalidate_raw(fairy: PoolProxiedConnection) -> None:
    if fairy.dbapi_connection is None:
        return  # invalidated already: its pool slot is back
    try:
        await _await_driver_cancellations(fairy.driver_connection)
    except BaseException:
        pass
    try:
        # Closes the driver connection and gives the pool slot back, even if closing fails.
        await greenlet_spawn(fairy.invalidate)
    except BaseException:  # a dead connection may fail to close: it is gone either way
        pass


def _driver_of(conn: AsyncConnection) -> Any:
    """The driver connection under `conn`, or None."""
    sync = conn.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return None  # (`.connection` would check a new connection out)
    try:
        return sync.connection.driver_connection
    except Exception:
        return None


async def _await_driver_cancellations(driver: Any) -> None:
    """Let asyncpg finish the cancel requests of a cancelled statement before the connection
    closes: closing it cancels them mid-connect, which asyncpg reports as "Future exception was
    never retrieved"."""
    pending = [task for task in getattr(driver, "_cancellations", ()) if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=_DRIVER_CANCEL_WAIT_SECONDS)


class _Connection:
    """A SQLAlchemy connection running the store's `:name` statements."""

    __slots__ = ("_conn", "_store")

    def __init__(self, store: SQLAlchemyStore[Any], conn: AsyncConnection) -> None:
        self._store = store
        self._conn = conn

    async def fetch(self, sql: str, params: Params | None) -> Sequence[Row]:
        if params is None:
            return (await self._conn.exec_driver_sql(sql)).all()
        return (await self._conn.execute(self._store._text(sql), params)).all()

    async def fetch_value(self, sql: str, params: Params | None) -> Any:
        if params is None:
            return (await self._conn.exec_driver_sql(sql)).scalar()
        return (await self._conn.execute(self._store._text(sql), params)).scalar()

    async def execute(self, sql: str, params: Params | None) -> None:
        if params is None:
            await self._conn.exec_driver_sql(sql)
        else:
            await self._conn.execute(self._store._text(sql), params)

    async def execute_count(self, sql: str, params: Params) -> int:
        """Run one statement; return its affected-row count (MySQL: rows matched)."""
        return (await self._conn.execute(self._store._text(sql), params)).rowcount


class _DriverRunner(Protocol):
    """A pooled driver connection running the store's `:name` statements itself."""

    async def open(self) -> None:
        """Prepare the connection for the call's statements."""
        ...

    async def close(self) -> None:
        """Undo `open` before the connection goes back to the pool."""
        ...

    def idle(self) -> bool:
        """Whether the connection has no transaction open (asked of the driver, no I/O)."""
        ...

    async def fetch(self, sql: str, params: Params | None) -> Sequence[Row]: ...

    async def fetch_value(self, sql: str, params: Params | None) -> Any: ...

    async def execute(self, sql: str, params: Params | None) -> None: ...

    async def execute_count(self, sql: str, params: Params) -> int: ...


_RunnerFactory = Callable[["SQLAlchemyStore[Any]", PoolProxiedConnection], _DriverRunner]
"""How a runner is made from the store and its pooled connection (its class)."""


class _NothingToPrepare:
    """A runner whose connection needs nothing prepared for a call nor undone after it."""

    __slots__ = ()

    async def open(self) -> None:
        """Prepare the connection for the call's statements."""

    async def close(self) -> None:
        """Undo `open` before the connection goes back to the pool."""


class _DriverBase(_NothingToPrepare):
    """A pooled driver connection (`_driver`) of the store."""

    __slots__ = ("_driver", "_store")

    def __init__(self, store: SQLAlchemyStore[Any], pooled: PoolProxiedConnection) -> None:
        self._store = store
        self._driver: Any = pooled.driver_connection


class _DriverConnection(_DriverBase):
    """The pooled aiosqlite connection running the store's `:name` statements (sqlite3 takes
    `:name` parameters as they are)."""

    __slots__ = ()

    def idle(self) -> bool:
        return not self._driver.in_transaction

    async def fetch(self, sql: str, params: Params | None) -> Sequence[Row]:
        rows: Sequence[Row] = await self._driver.execute_fetchall(sql, params or ())
        return rows

    async def fetch_value(self, sql: str, params: Params | None) -> Any:
        rows = await self.fetch(sql, params)
        return rows[0][0] if rows else None

    async def execute(self, sql: str, params: Params | None) -> None:
        await self._driver.execute_fetchall(sql, params or ())

    async def execute_count(self, sql: str, params: Params) -> int:
        cursor = await self._driver.execute(sql, params)
        try:
            count: int = cursor.rowcount
        finally:
            await cursor.close()
        return count


class _AsyncpgDriver(AsyncpgRunner, _NothingToPrepare):
    """The pooled asyncpg connection running the store's statements as `$n` (asyncpg runs a
    statement outside a transaction on its own: the adapter's emulated DB-API transaction is
    never started)."""

    __slots__ = ()

    def __init__(self, store: SQLAlchemyStore[Any], pooled: PoolProxiedConnection) -> None:
        super().__init__(store._numbered, pooled.driver_connection)

    def idle(self) -> bool:
        return not self._driver.is_in_transaction()


class _PsycopgDriver(_DriverBase):
    """The pooled psycopg connection running the store's statements as `%(name)s`, switched to
    autocommit for the call (no I/O: psycopg applies it at the next statement) and back.

    Statements run on one cursor per connection, kept in the pool's `info` of the connection
    (a new psycopg cursor costs about as much CPU as running a short statement).
    """

    __slots__ = ("_cursor", "_switched")

    def __init__(self, store: SQLAlchemyStore[Any], pooled: PoolProxiedConnection) -> None:
        super().__init__(store, pooled)
        self._switched = False
        cursor = pooled.info.get(_PSYCOPG_CURSOR)
        if cursor is None or cursor.closed or cursor.connection is not self._driver:
            cursor = pooled.info[_PSYCOPG_CURSOR] = self._driver.cursor()
        self._cursor = cursor

    async def open(self) -> None:
        if not self._driver.autocommit:
            await self._driver.set_autocommit(True)
            self._switched = True

    async def close(self) -> None:
        if self._switched:
            await self._driver.set_autocommit(False)

    def idle(self) -> bool:
        return bool(self._driver.info.transaction_status == _PSYCOPG_IDLE)

    async def _execute(self, sql: str, params: Params | None) -> Any:
        if params is None:
            return await self._cursor.execute(sql)
        return await self._cursor.execute(self._store._pyformat.sql(sql), params)

    async def fetch(self, sql: str, params: Params | None) -> Sequence[Row]:
        rows: Sequence[Row] = await (await self._execute(sql, params)).fetchall()
        return rows

    async def fetch_value(self, sql: str, params: Params | None) -> Any:
        row = await (await self._execute(sql, params)).fetchone()
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Params | None) -> None:
        await self._execute(sql, params)

    async def execute_count(self, sql: str, params: Params) -> int:
        count: int = (await self._execute(sql, params)).rowcount
        return count


_PSYCOPG_IDLE = 0
"""psycopg's `TransactionStatus.IDLE` (libpq's PQTRANS_IDLE): connected, no transaction open."""

_PSYCOPG_CURSOR = "chatkit_kit.psycopg_cursor"
"""The key of a pooled psycopg connection's store cursor in its `info`."""

_DRIVER_RUNNERS: dict[str, _RunnerFactory] = {
    "asyncpg": _AsyncpgDriver,
    "psycopg": _PsycopgDriver,
}
