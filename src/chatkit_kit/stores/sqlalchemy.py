"""`SQLAlchemyStore`: the ChatKit store on a SQLAlchemy 2 async engine.

SQLite (aiosqlite), PostgreSQL (asyncpg, psycopg) and MySQL/MariaDB (asyncmy, aiomysql).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from chatkit.store import TContext
from typing_extensions import Self

from .._optional import require
from . import _mysql, _schema
from ._base import AttachmentPresenter
from ._ids import is_storable_id
from ._owner import OwnerResolver
from ._sqlstore import DatabaseUnavailableError, Params, Row, SQLStoreBase

require("sqlalchemy", "sqlalchemy")

from sqlalchemy import TextClause, event, exc, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine  # noqa: E402

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


def _resolve_url(url: str) -> Any:
    """`url` parsed, with a driver filled in for plain `mysql://` and `mariadb://` URLs."""
    parsed = make_url(url)
    if parsed.drivername in _mysql.SCHEMES:
        parsed = parsed.set(drivername=_mysql.resolve_url_scheme(parsed.drivername))
    if parsed.get_backend_name() in _mysql.SCHEMES and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def _enable_sqlite_wal(engine: AsyncEngine) -> None:
    """Put every new connection of `engine` in WAL mode (file databases keep it)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()


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
    ) -> None:
        names = _schema.Names.create(_dialect_of(engine), schema, table_prefix)
        super().__init__(names, owner=owner, attachment_presenter=attachment_presenter)
        self._engine = engine
        # Every statement but SQLite's two-statement delete_thread is atomic on its own, so
        # running without BEGIN/COMMIT saves two round trips per call.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
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
        attachment_presenter: AttachmentPresenter | None = None,
        **engine_kwargs: Any,
    ) -> Self:
        """Create a store that owns a new engine for `url`; `close()` disposes it.

        `url` is a SQLAlchemy async URL such as `sqlite+aiosqlite:///chat.db`,
        `postgresql+asyncpg://user@host/db`, `postgresql+psycopg://user@host/db` or
        `mysql+asyncmy://user:password@host/db` (also `mysql+aiomysql://`, and `mariadb+...`).
        A plain `mysql://` or `mariadb://` URL uses asyncmy, or aiomysql when only that is
        installed; MySQL connections use utf8mb4 unless the URL sets `charset`.
        `engine_kwargs` go to `create_async_engine`. SQLite files are switched to WAL mode and
        wait up to SQLITE_BUSY_TIMEOUT_SECONDS for locks (override with
        `connect_args={"timeout": seconds}`).
        """
        parsed = _resolve_url(url)
        if parsed.get_backend_name() == "sqlite":
            connect_args = dict(engine_kwargs.pop("connect_args", {}))
            connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_SECONDS)
            engine_kwargs["connect_args"] = connect_args
        engine = create_async_engine(parsed, **engine_kwargs)
        if engine.dialect.name == "sqlite":
            _enable_sqlite_wal(engine)
        try:
            store = cls(
                engine,
                schema=schema,
                table_prefix=table_prefix,
                owner=owner,
                attachment_presenter=attachment_presenter,
            )
        except BaseException:
            engine.sync_engine.dispose()
            raise
        store._owns_engine = True
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

    async def _run(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run one whole store operation; on MySQL again when InnoDB aborted it (deadlock)."""
        if self._mysql:
            return await _mysql.retrying(operation, exc.DBAPIError)
        return await operation()

    async def _fetch(self, sql: str, params: Params) -> Sequence[Row]:
        async def fetch() -> Sequence[Row]:
            async with self._connect() as conn:
                result = await conn.execute(self._text(sql), params)
                return result.all()

        return await self._run(fetch)

    async def _fetch_value(self, sql: str, params: Params) -> Any:
        async def fetch_value() -> Any:
            async with self._connect() as conn:
                result = await conn.execute(self._text(sql), params)
                return result.scalar()

        return await self._run(fetch_value)

    async def _execute(self, statements: Sequence[str], params: Params) -> None:
        async def execute() -> None:
            if len(statements) == 1:
                async with self._connect() as conn:
                    await conn.execute(self._text(statements[0]), params)
                return
            async with self._connect(autocommit=False) as conn, conn.begin():
                for sql in statements:
                    await conn.execute(self._text(sql), params)

        await self._run(execute)

    async def delete_orphan_attachment(self, owner: str, attachment_id: str) -> bool:
        if not self._mysql:
            return await super().delete_orphan_attachment(owner, attachment_id)
        # MySQL has no DELETE ... RETURNING: count the affected rows instead.
        if not is_storable_id(attachment_id):
            return False
        if not self._schema_checked:
            await self._check_schema()

        async def delete() -> bool:
            async with self._connect() as conn:
                result = await conn.execute(
                    self._text(self._sql.delete_orphan_attachment),
                    {"owner": owner, "id": attachment_id},
                )
                return bool(result.rowcount)

        return await self._run(delete)

    async def _migrate(self, target: int | None) -> tuple[int, int]:
        if self._names.dialect == "sqlite":
            return await self._migrate_sqlite(target)
        if self._mysql:
            return await self._run(lambda: self._migrate_mysql(target))
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

    async def _migrate_mysql(self, target: int | None) -> tuple[int, int]:
        # DDL commits implicitly: no transaction, but a named lock held by this connection
        # around the whole migration (released by the server if the connection drops).
        async with self._connect() as conn:
            execute, fetch_value = _raw_runners(conn)
            locked = await fetch_value(_mysql.acquire_lock_sql(self._names))
            if locked != 1:
                raise _mysql.lock_timeout_error(self._names, locked)
            try:
                return await _schema.apply_migrations(
                    self._names, execute, fetch_value, target=target
                )
            finally:
                await fetch_value(_mysql.release_lock_sql(self._names))

    async def _schema_version(self) -> int:
        async with self._connect() as conn:
            _execute, fetch_value = _raw_runners(conn)
            return await _schema.read_version(self._names, fetch_value)


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
