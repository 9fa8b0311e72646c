"""`SQLAlchemyStore`: the ChatKit store on a SQLAlchemy 2 async engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic

from chatkit.store import TContext
from typing_extensions import Self

from .._optional import require
from . import _schema
from ._base import AttachmentPresenter
from ._owner import OwnerResolver
from ._sqlstore import DatabaseUnavailableError, Params, Row, SQLStoreBase

require("sqlalchemy", "sqlalchemy")

from sqlalchemy import TextClause, event, exc, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine  # noqa: E402
from sqlalchemy.util.concurrency import await_  # noqa: E402

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
"""How long a SQLite connection made by `from_url` waits for another writer's lock."""


def _dialect_of(engine: AsyncEngine) -> _schema.Dialect:
    name = engine.dialect.name
    if name == "postgresql":
        return "postgresql"
    if name == "sqlite":
        return "sqlite"
    raise ValueError(
        f"SQLAlchemyStore supports PostgreSQL and SQLite engines, got a {name!r} engine"
    )


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
    """Roll back a SQLite connection that is checked in with a transaction still open."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is None:
            return
        driver = dbapi_connection.driver_connection
        if driver is not None and driver.in_transaction:
            await_(driver.rollback())


class SQLAlchemyStore(SQLStoreBase[TContext], Generic[TContext]):
    """A ChatKit `Store` on SQLAlchemy: SQLite (aiosqlite) or PostgreSQL (asyncpg or psycopg).

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
        attachment_presenter: AttachmentPresenter | None = None,
        pgbouncer: bool = False,
    ) -> None:
        names = _schema.Names.create(_dialect_of(engine), schema, table_prefix)
        super().__init__(names, owner=owner, attachment_presenter=attachment_presenter)
        self._engine = engine
        self._pgbouncer = pgbouncer
        # Every statement but SQLite's two-statement delete_thread is atomic on its own, so
        # running without BEGIN/COMMIT saves two round trips per call. Behind PgBouncer in
        # transaction mode the asyncpg driver prepares a statement and executes it in two
        # exchanges, which only stay on one server connection inside a transaction.
        self._in_transaction = pgbouncer and engine.dialect.driver == "asyncpg"
        self._sqlite = names.dialect == "sqlite"
        self._autocommit = (
            engine
            if self._in_transaction
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._owns_engine = False
        self._texts: dict[str, TextClause] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        schema: str | None = None,
        table_prefix: str = _schema.DEFAULT_TABLE_PREFIX,
        owner: OwnerResolver | None = None,
        attachment_presenter: AttachmentPresenter | None = None,
        pgbouncer: bool = False,
        **engine_kwargs: Any,
    ) -> Self:
        """Create a store that owns a new engine for `url`; `close()` disposes it.

        `url` is a SQLAlchemy async URL such as `sqlite+aiosqlite:///chat.db`,
        `postgresql+asyncpg://user@host/db` or `postgresql+psycopg://user@host/db`.
        `engine_kwargs` go to `create_async_engine`. SQLite files are switched to WAL mode and
        wait up to SQLITE_BUSY_TIMEOUT_SECONDS for locks (override with
        `connect_args={"timeout": seconds}`).

        `pgbouncer=True` is for PostgreSQL behind PgBouncer in transaction pooling mode (any
        version): no server-side prepared statement is reused across transactions (psycopg:
        `prepare_threshold=None`; asyncpg: no statement cache, uniquely named statements, every
        call in its own transaction).
        """
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            connect_args = dict(engine_kwargs.pop("connect_args", {}))
            connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_SECONDS)
            engine_kwargs["connect_args"] = connect_args
            # Every connection starts in autocommit mode, so checking one out and back in
            # switches no isolation level (the store opens its own transactions on SQLite).
            engine_kwargs.setdefault("isolation_level", "AUTOCOMMIT")
            if engine_kwargs["isolation_level"] == "AUTOCOMMIT":
                # No blanket ROLLBACK on every check-in (a hop to the driver's thread): a
                # connection is rolled back only if it comes back inside a transaction.
                engine_kwargs.setdefault("pool_reset_on_return", None)
        elif pgbouncer:
            engine_kwargs["connect_args"] = _pgbouncer_connect_args(
                parsed.get_driver_name(), dict(engine_kwargs.pop("connect_args", {}))
            )
        engine = create_async_engine(parsed, **engine_kwargs)
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
                attachment_presenter=attachment_presenter,
                pgbouncer=pgbouncer,
            )
        except BaseException:
            engine.sync_engine.dispose()
            raise
        store._owns_engine = True
        if engine_kwargs.get("isolation_level") == "AUTOCOMMIT":
            store._autocommit = engine
        return store

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store runs on."""
        return self._engine

    async def close(self) -> None:
        """Dispose the engine if `from_url` created it; an engine you passed in stays open."""
        if self._owns_engine:
            await self._engine.dispose()

    # Running statements

    def _text(self, sql: str) -> TextClause:
        clause = self._texts.get(sql)
        if clause is None:
            clause = self._texts[sql] = text(sql)
        return clause

    @asynccontextmanager
    async def _connect(self, *, autocommit: bool = True) -> AsyncIterator[AsyncConnection]:
        engine = self._autocommit if autocommit else self._engine
        try:
            conn = await engine.connect()
        except (exc.DBAPIError, OSError) as error:
            raise _unavailable(error) from error
        try:
            yield conn
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                raise _unavailable(error) from error
            raise
        finally:
            await conn.close()

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one atomic statement: autocommit, or (PgBouncer + asyncpg) a
        transaction committed when the block ends."""
        async with self._connect() as conn:
            if not self._in_transaction:
                yield conn
                return
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def _sqlite_driver(self) -> AsyncIterator[Any]:
        """The pooled aiosqlite connection itself, in autocommit mode.

        SQLite statements skip SQLAlchemy's cursor layer: one `execute_fetchall` is one hop to
        the driver's thread instead of several (cursor, execute, fetch, close); the SQL and its
        `:name` parameters are the same. Driver errors come out as SQLAlchemy's `DBAPIError`,
        as they would through `execute`.
        """
        async with self._connect() as conn:
            raw = await conn.get_raw_connection()
            try:
                yield raw.driver_connection
            except sqlite3.Error as error:
                raise exc.DBAPIError.instance(
                    None, None, error, sqlite3.Error, connection_invalidated=False
                ) from error

    async def _fetch(self, sql: str, params: Params) -> Sequence[Row]:
        if self._sqlite:
            async with self._sqlite_driver() as driver:
                rows: Sequence[Row] = await driver.execute_fetchall(sql, params)
                return rows
        async with self._statement() as conn:
            result = await conn.execute(self._text(sql), params)
            return result.all()

    async def _fetch_value(self, sql: str, params: Params) -> Any:
        if self._sqlite:
            rows = await self._fetch(sql, params)
            return rows[0][0] if rows else None
        async with self._statement() as conn:
            result = await conn.execute(self._text(sql), params)
            return result.scalar()

    async def _execute(self, statements: Sequence[str], params: Params) -> None:
        if self._sqlite:
            async with self._sqlite_driver() as driver:
                if len(statements) == 1:
                    await driver.execute_fetchall(statements[0], params)
                    return
                await driver.execute_fetchall("BEGIN IMMEDIATE")
                try:
                    for sql in statements:
                        await driver.execute_fetchall(sql, params)
                except BaseException:
                    await driver.execute_fetchall("ROLLBACK")
                    raise
                await driver.execute_fetchall("COMMIT")
            return
        if len(statements) == 1:
            async with self._statement() as conn:
                await conn.execute(self._text(statements[0]), params)
            return
        async with self._connect(autocommit=False) as conn, conn.begin():
            for sql in statements:
                await conn.execute(self._text(sql), params)

    async def _migrate(self, target: int | None) -> tuple[int, int]:
        if self._names.dialect == "sqlite":
            return await self._migrate_sqlite(target)
        async with self._connect(autocommit=False) as conn, conn.begin():
            return await _schema.apply_migrations(self._names, *_raw_runners(conn), target=target)

    async def _migrate_sqlite(self, target: int | None) -> tuple[int, int]:
        # The sqlite3 driver does not open transactions for DDL by itself: run the whole
        # migration in an explicit BEGIN IMMEDIATE, which also serializes concurrent migrators.
        async with self._connect() as conn:
            await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                result = await _schema.apply_migrations(
                    self._names, *_raw_runners(conn), target=target
                )
            except BaseException:
                await conn.exec_driver_sql("ROLLBACK")
                raise
            await conn.exec_driver_sql("COMMIT")
            return result

    async def _schema_version(self) -> int:
        async with self._connect() as conn:
            _execute, fetch_value = _raw_runners(conn)
            return await _schema.read_version(self._names, fetch_value)


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


def _raw_runners(conn: AsyncConnection) -> tuple[_schema.Execute, _schema.FetchValue]:
    async def execute(sql: str) -> None:
        await conn.exec_driver_sql(sql)

    async def fetch_value(sql: str) -> Any:
        return (await conn.exec_driver_sql(sql)).scalar()

    return execute, fetch_value


def _unavailable(error: BaseException) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(
        f"the database connection failed ({type(error).__name__}: {error}); the call may not "
        "have been applied, and the store reconnects on the next call"
    )
