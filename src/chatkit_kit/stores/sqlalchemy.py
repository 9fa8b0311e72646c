"""`SQLAlchemyStore`: the ChatKit store on a SQLAlchemy 2 async engine.

SQLite (aiosqlite), PostgreSQL (asyncpg, psycopg) and MySQL/MariaDB (asyncmy, aiomysql); what
is particular to MySQL lives in `_mysql`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from chatkit.store import TContext
from typing_extensions import Self

from .._optional import require
from ..errors import (
    ChatKitKitError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
)
from . import _mysql, _schema
from ._dberrors import database_error, kind_of_message, kind_of_sqlstate
from ._rules import OwnerResolver, is_storable_id
from ._sqlstore import Params, Row, SQLStoreBase, _raw_runners
from ._urls import redact_database_url, resolve_database_url

require("sqlalchemy", "sqlalchemy", "SQLAlchemyStore")

from sqlalchemy import TextClause, event, exc, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine  # noqa: E402

try:  # SQLAlchemy 2.1 names it await_; 2.0 (what Python 3.10 installs today) await_only.
    from sqlalchemy.util.concurrency import await_
except ImportError:  # pragma: no cover - depends on the installed SQLAlchemy
    from sqlalchemy.util import await_only as await_  # type: ignore[no-redef,attr-defined,unused-ignore]

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
"""How long a SQLite connection made by `from_url` waits for another writer's lock."""


def _dialect_of(engine: AsyncEngine) -> _schema.Dialect:
    name = engine.dialect.name
    if name == "postgresql":
        return "postgresql"
    if name == "sqlite":
        return "sqlite"
    if name in ("mysql", "mariadb"):
        return "mysql"
    raise ValueError(
        f"SQLAlchemyStore supports PostgreSQL, MySQL/MariaDB and SQLite engines, got a {name!r} "
        "engine"
    )


_T = TypeVar("_T")


def _enable_sqlite_wal(engine: AsyncEngine) -> None:
    """Put every new connection of `engine` in WAL mode (file databases keep it)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()


def _rollback_open_transactions(engine: AsyncEngine) -> None:
    """Roll back a SQLite connection checked in with a transaction still open.

    Engines made by `from_url` skip the pool's blanket ROLLBACK on every check-in (one more
    hop to the driver's thread per call); this keeps the guarantee that no pooled connection
    holds a transaction.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        driver = None if dbapi_connection is None else dbapi_connection.driver_connection
        if driver is not None and driver.in_transaction:
            await_(driver.rollback())


def _pgbouncer_connect_args(driver: str, connect_args: dict[str, Any]) -> dict[str, Any]:
    """`connect_args` that keep `driver` from reusing server-side prepared statements."""
    if driver == "psycopg":
        connect_args.setdefault("prepare_threshold", None)
    elif driver == "asyncpg":
        connect_args.setdefault("statement_cache_size", 0)
        connect_args.setdefault("prepared_statement_cache_size", 0)
        connect_args.setdefault("prepared_statement_name_func", _unique_statement_name)
    return connect_args


def _unique_statement_name() -> str:
    return f"__chatkit_kit_{uuid.uuid4().hex}__"


class SQLAlchemyStore(SQLStoreBase[TContext], Generic[TContext]):
    """A ChatKit `Store` on SQLAlchemy: SQLite (aiosqlite), PostgreSQL (asyncpg or psycopg) or
    MySQL/MariaDB (asyncmy or aiomysql).

    Pass an `AsyncEngine` your app owns, or use `SQLAlchemyStore.from_url(...)`, which creates
    one that `close()` disposes. Create the tables with `await store.migrate()` or
    `chatkit-kit migrate DATABASE_URL`. On PostgreSQL it shares its tables with `AsyncpgStore`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        table_prefix: str = _schema.DEFAULT_TABLE_PREFIX,
        owner: OwnerResolver | None = None,
        pgbouncer: bool = False,
    ) -> None:
        names = _schema.Names.create(_dialect_of(engine), schema, table_prefix)
        super().__init__(names, owner=owner)
        self._engine = engine
        self._sqlite = names.dialect == "sqlite"
        # Behind PgBouncer in transaction mode the asyncpg driver prepares a statement and
        # executes it in two exchanges, which stay on one server connection only inside a
        # transaction: there every call runs in one.
        self._always_transaction = pgbouncer and engine.dialect.driver == "asyncpg"
        # Every statement but SQLite's two-statement delete_thread is atomic on its own, so
        # running without BEGIN/COMMIT saves two round trips per call. False when the engine's
        # connections are in autocommit mode already (`from_url` on SQLite and MySQL).
        self._switch_to_autocommit = True
        self._autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._owns_engine = False
        self._texts: dict[str, TextClause] = {}
        self._mysql = self._names.dialect == "mysql"

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        schema: str | None = None,
        table_prefix: str = _schema.DEFAULT_TABLE_PREFIX,
        owner: OwnerResolver | None = None,
        pgbouncer: bool = False,
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
        """
        resolved = resolve_database_url(url)
        try:
            parsed = make_url(resolved)
        except exc.ArgumentError as error:
            raise ValueError(
                f"cannot parse the database URL {redact_database_url(url)!r}: {error}"
            ) from None
        if parsed.get_backend_name() in _mysql.SCHEMES:
            parsed = _mysql.configure_url(parsed)
            # MySQL closes idle connections (wait_timeout) and failovers drop them: check each
            # pooled connection on checkout, so a dead one is replaced instead of failing a call.
            engine_kwargs.setdefault("pool_pre_ping", True)
            # Autocommit connections (see `_connect`), and no ROLLBACK round trip when a call
            # ends: a statement in autocommit mode has nothing to roll back.
            engine_kwargs.setdefault("isolation_level", "AUTOCOMMIT")
            if engine_kwargs["isolation_level"] == "AUTOCOMMIT":
                engine_kwargs.setdefault("skip_autocommit_rollback", True)
        if parsed.get_backend_name() == "sqlite":
            connect_args = dict(engine_kwargs.pop("connect_args", {}))
            connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_SECONDS)
            engine_kwargs["connect_args"] = connect_args
            engine_kwargs.setdefault("isolation_level", "AUTOCOMMIT")
            if engine_kwargs["isolation_level"] == "AUTOCOMMIT":
                engine_kwargs.setdefault("pool_reset_on_return", None)
        elif pgbouncer:
            engine_kwargs["connect_args"] = _pgbouncer_connect_args(
                parsed.get_driver_name(), dict(engine_kwargs.pop("connect_args", {}))
            )
        try:
            engine = create_async_engine(parsed, **engine_kwargs)
        except exc.ArgumentError as error:
            raise ValueError(f"cannot create an engine for {parsed!r}: {error}") from error
        if engine.dialect.name == "sqlite":
            _enable_sqlite_wal(engine)
            if engine_kwargs.get("pool_reset_on_return", "rollback") is None:
                _rollback_open_transactions(engine)
        try:
            store = cls(
                engine,
                schema=schema,
                table_prefix=table_prefix,
                owner=owner,
                pgbouncer=pgbouncer,
            )
        except BaseException:
            engine.sync_engine.dispose()
            raise
        store._owns_engine = True
        if engine_kwargs.get("isolation_level") == "AUTOCOMMIT":
            store._switch_to_autocommit = False  # already autocommit: no per-call switch
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

    @asynccontextmanager
    async def _connect(
        self, *, transaction: bool
    ) -> AsyncIterator[_Connection | _SQLiteConnection]:
        sqlite = self._sqlite
        transaction = transaction or self._always_transaction
        # Single statements are atomic on their own: AUTOCOMMIT saves BEGIN/COMMIT round trips.
        # SQLite transactions are BEGIN IMMEDIATE (taken by hand, since the driver would begin
        # lazily), so a writer never fails to upgrade a read lock and migrations serialize.
        # MySQL never switches a connection's isolation level per call: the switch is a round
        # trip each way, and when the server has killed the connection, switching it back on
        # check-in fails inside SQLAlchemy's pool, which then loses the connection's slot
        # (the pool runs dry). `from_url` makes MySQL engines autocommit instead; on an engine
        # passed in, every MySQL call runs in a transaction.
        autocommit = sqlite or not transaction
        switch = autocommit and self._switch_to_autocommit and not self._mysql
        conn = await _checkout(self._autocommit_engine if switch else self._engine)
        try:
            if sqlite:
                # Straight to aiosqlite: one hop to its thread per statement, not one each
                # for cursor, execute, fetch and close.
                driver = _SQLiteConnection((await conn.get_raw_connection()).driver_connection)
                if not transaction:
                    yield driver
                else:
                    await driver.execute("BEGIN IMMEDIATE", None)
                    try:
                        yield driver
                    except BaseException:
                        await driver.execute("ROLLBACK", None)
                        raise
                    await driver.execute("COMMIT", None)
            elif self._mysql and not self._switch_to_autocommit:  # an autocommit engine
                if transaction:
                    await conn.exec_driver_sql("START TRANSACTION")
                yield _Connection(self, conn)
                if transaction:
                    await conn.exec_driver_sql("COMMIT")
            elif not transaction and not self._mysql:
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
        if isinstance(error, sqlite3.Error):  # the SQLite path runs on the driver directly
            return database_error(_kind_without_sqlstate("sqlite", error), error)
        if isinstance(error, exc.TimeoutError):  # no pooled connection became free
            return database_error(DatabaseTimeoutError, error)
        if isinstance(error, exc.DBAPIError):
            original = error.orig
            if original is None or error.connection_invalidated:
                return database_error(DatabaseUnavailableError, error)
            if self._mysql:
                return database_error(_mysql.kind_of_error(original), original)
            sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
            if sqlstate:
                return database_error(kind_of_sqlstate(str(sqlstate)), original)
            return database_error(_kind_without_sqlstate(self._names.dialect, original), original)
        if isinstance(error, exc.SQLAlchemyError):
            return database_error(DatabaseError, error)
        if isinstance(error, OSError):
            return database_error(DatabaseUnavailableError, error)
        if type(error).__module__.partition(".")[0] in ("asyncpg", "psycopg"):
            # SQLAlchemy 2.0 (what Python 3.10 installs) lets some connect-time driver errors
            # through unwrapped.
            sqlstate = getattr(error, "sqlstate", None)
            if sqlstate:
                return database_error(kind_of_sqlstate(str(sqlstate)), error)
            return database_error(_kind_without_sqlstate(self._names.dialect, error), error)
        if self._mysql and _mysql.is_driver_error(error):
            # SQLAlchemy sets AUTOCOMMIT on the raw MySQL connection without wrapping errors.
            return database_error(_mysql.kind_of_error(error), error)
        return None

    # MySQL: whole operations run again when InnoDB picked them as a deadlock victim.

    async def _retry(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        if self._mysql:
            return await _mysql.retrying(operation)
        return await operation()

    async def _fetch(self, sql: str, params: Params) -> Sequence[Row]:
        return await self._retry(lambda: SQLStoreBase._fetch(self, sql, params))

    async def _fetch_value(self, sql: str, params: Params) -> Any:
        return await self._retry(lambda: SQLStoreBase._fetch_value(self, sql, params))

    async def _execute(self, statements: Sequence[str], params: Params) -> None:
        await self._retry(lambda: SQLStoreBase._execute(self, statements, params))

    async def _affected_rows(self, sql: str, params: Params) -> int:
        """MySQL, which has no RETURNING: run one statement, return its affected-row count."""

        async def run() -> int:
            async with self._connection() as conn:
                assert isinstance(conn, _Connection)
                return await conn.execute_count(sql, params)

        return await self._retry(run)

    async def _write_item(self, params: Params) -> bool:
        if not self._mysql:
            return await SQLStoreBase._write_item(self, params)
        return await self._affected_rows(self._sql.upsert_item, params) > 0  # 0: no thread row

    async def delete_orphan_attachment(self, owner: str, attachment_id: str) -> bool:
        if not self._mysql:
            return await super().delete_orphan_attachment(owner, attachment_id)
        if not is_storable_id(attachment_id):
            return False
        params = {"owner": owner, "id": attachment_id}
        return await self._affected_rows(self._sql.delete_orphan_attachment, params) > 0

    async def _migrate_mysql(self, target: int | None) -> int:
        # DDL commits implicitly on MySQL: no transaction, but a named lock held by this
        # connection around the whole migration (the server releases it if the connection
        # drops), and every step can run again after an interruption.
        async with self._connection(ready=False) as conn:
            execute, fetch_value = _raw_runners(conn)
            locked = await fetch_value(_mysql.acquire_lock_sql(self._names))
            if locked != 1:
                raise _mysql.lock_timeout_error(self._names, locked)
            try:
                _found, now = await _schema.apply_migrations(
                    self._names, execute, fetch_value, target=target
                )
            except BaseException:
                # The real error wins: on a connection that died mid-migration RELEASE_LOCK
                # fails too (and the server has released the lock with the connection).
                with contextlib.suppress(Exception):
                    await fetch_value(_mysql.release_lock_sql(self._names))
                raise
            await fetch_value(_mysql.release_lock_sql(self._names))
        return now

    async def migrate(self, *, target: int | None = None) -> int:
        if self._mysql:
            _schema.check_target(target)
            now = await self._retry(lambda: self._migrate_mysql(target))
            self._schema_ready = now == _schema.LATEST_VERSION
            return now
        if self._names.dialect == "sqlite":
            # WAL lets readers run beside the writer; it cannot change inside a transaction.
            async with self._connection(ready=False) as conn:
                await conn.execute("PRAGMA journal_mode=WAL", None)
        return await super().migrate(target=target)

    migrate.__doc__ = SQLStoreBase.migrate.__doc__


_SETTLING: set[asyncio.Future[Any]] = set()
"""Connection returns still running after the call that started them was cancelled."""

_DRIVER_CANCEL_WAIT_SECONDS = 5.0
"""How long a discarded asyncpg connection waits for its driver's pending cancel requests."""


def _settle(operation: Awaitable[None]) -> asyncio.Future[None]:
    """Run `operation` (a connection's return to the pool) to its end, whatever happens to the
    call that started it: a cancellation of the caller stops the wait, never the return."""
    task = asyncio.ensure_future(operation)
    _SETTLING.add(task)
    task.add_done_callback(_SETTLING.discard)
    return asyncio.shield(task)


async def _checkout(engine: AsyncEngine) -> AsyncConnection:
    """A pooled connection of `engine`. Cancelling the caller mid-checkout (mid-connect) lets
    the checkout finish in the background and returns the connection to the pool."""

    async def connect() -> AsyncConnection:
        return await engine.connect()

    task = asyncio.ensure_future(connect())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_return_when_connected)
        raise


def _return_when_connected(task: asyncio.Future[AsyncConnection]) -> None:
    if not task.cancelled() and task.exception() is None:
        _settle(_return(task.result()))


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
        await _await_driver_cancellations(conn)
        await conn.invalidate()
    except BaseException:  # a dead connection may fail to close: it is gone either way
        pass
    finally:
        await conn.close()


async def _await_driver_cancellations(conn: AsyncConnection) -> None:
    """Let asyncpg finish the cancel requests of a cancelled statement before the connection
    closes: closing it cancels them mid-connect, which asyncpg reports as "Future exception was
    never retrieved"."""
    sync = conn.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return  # (`.connection` would check a new connection out)
    try:
        driver = sync.connection.driver_connection
    except Exception:
        return
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


class _SQLiteConnection:
    """The pooled aiosqlite connection running the store's `:name` statements (sqlite3 takes
    `:name` parameters as they are)."""

    __slots__ = ("_driver",)

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    async def fetch(self, sql: str, params: Params | None) -> Sequence[Row]:
        rows: Sequence[Row] = await self._driver.execute_fetchall(sql, params or ())
        return rows

    async def fetch_value(self, sql: str, params: Params | None) -> Any:
        rows = await self.fetch(sql, params)
        return rows[0][0] if rows else None

    async def execute(self, sql: str, params: Params | None) -> None:
        await self._driver.execute_fetchall(sql, params or ())


def _kind_without_sqlstate(dialect: str, original: BaseException) -> type[DatabaseError]:
    """psycopg while connecting and sqlite3 give no SQLSTATE: decide from type and message."""
    configured = kind_of_message(str(original))
    if configured is not None:
        return configured
    if dialect == "sqlite":
        # "database is locked": the busy timeout expired waiting for another writer.
        if "locked" in str(original) or "busy" in str(original):
            return DatabaseTimeoutError
        return DatabaseError
    name = type(original).__name__
    if name in ("OperationalError", "InterfaceError"):  # connection refused, lost, reset
        return DatabaseUnavailableError
    return DatabaseError
