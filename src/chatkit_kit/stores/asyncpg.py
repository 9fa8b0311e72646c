"""`AsyncpgStore`: the ChatKit store on an asyncpg connection pool (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic

from chatkit.store import TContext
from typing_extensions import Self

from .._optional import require
from . import _schema
from ._base import AttachmentPresenter
from ._owner import OwnerResolver
from ._sql import numbered
from ._sqlstore import DatabaseUnavailableError, Params, Row, SQLStoreBase

asyncpg = require("asyncpg", "asyncpg")

# Errors that mean the connection, not the statement, failed.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    OSError,
)


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
        attachment_presenter: AttachmentPresenter | None = None,
    ) -> None:
        names = _schema.Names.create("postgresql", schema, table_prefix)
        super().__init__(names, owner=owner, attachment_presenter=attachment_presenter)
        self._pool = pool
        self._owns_pool = False
        self._numbered: dict[str, tuple[str, tuple[str, ...]]] = {}

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        schema: str | None = None,
        table_prefix: str = _schema.DEFAULT_TABLE_PREFIX,
        owner: OwnerResolver | None = None,
        attachment_presenter: AttachmentPresenter | None = None,
        pgbouncer: bool = False,
        **pool_kwargs: Any,
    ) -> Self:
        """Create a store that owns a new pool for `dsn`; `close()` closes it.

        `pool_kwargs` go to `asyncpg.create_pool` (e.g. `min_size`, `max_size`). The pool
        skips asyncpg's per-release session reset query (the store sets no session state): one
        round trip per call instead of two. Pass `reset=` to run your own.
        `pgbouncer=True` is for PgBouncer in transaction pooling mode: it sets
        `statement_cache_size=0`, so no named prepared statement outlives its call (a pool you
        create yourself for PgBouncer needs the same setting).
        """
        names = _schema.Names.create("postgresql", schema, table_prefix)  # fail before connecting
        del names
        if pgbouncer:
            pool_kwargs.setdefault("statement_cache_size", 0)
        # asyncpg's default reset runs one more query (RESET ALL, UNLISTEN, ...) every time a
        # connection goes back to the pool; the store changes no session state, so skip it.
        pool_kwargs.setdefault("reset", _keep_session)
        try:
            pool = await asyncpg.create_pool(dsn, **pool_kwargs)
        except _CONNECTION_ERRORS as error:
            raise _unavailable(error) from error
        store = cls(
            pool,
            schema=schema,
            table_prefix=table_prefix,
            owner=owner,
            attachment_presenter=attachment_presenter,
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

    # Running statements

    def _args(self, sql: str, params: Params) -> tuple[str, list[Any]]:
        converted = self._numbered.get(sql)
        if converted is None:
            converted = self._numbered[sql] = numbered(sql)
        query, names = converted
        return query, [params[name] for name in names]

    async def _fetch(self, sql: str, params: Params) -> Sequence[Row]:
        query, args = self._args(sql, params)
        try:
            rows: Sequence[Row] = await self._pool.fetch(query, *args)
        except _CONNECTION_ERRORS as error:
            raise _unavailable(error) from error
        return rows

    async def _fetch_value(self, sql: str, params: Params) -> Any:
        query, args = self._args(sql, params)
        try:
            return await self._pool.fetchval(query, *args)
        except _CONNECTION_ERRORS as error:
            raise _unavailable(error) from error

    async def _execute(self, statements: Sequence[str], params: Params) -> None:
        try:
            if len(statements) == 1:
                query, args = self._args(statements[0], params)
                await self._pool.execute(query, *args)
                return
            async with self._pool.acquire() as conn, conn.transaction():
                for sql in statements:
                    query, args = self._args(sql, params)
                    await conn.execute(query, *args)
        except _CONNECTION_ERRORS as error:
            raise _unavailable(error) from error

    async def _migrate(self, target: int | None) -> tuple[int, int]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                result: tuple[int, int] = await _schema.apply_migrations(
                    self._names, conn.execute, conn.fetchval, target=target
                )
                return result
        except _CONNECTION_ERRORS as error:
            raise _unavailable(error) from error

    async def _schema_version(self) -> int:
        try:
            async with self._pool.acquire() as conn:
                return await _schema.read_version(self._names, conn.fetchval)
        except _CONNECTION_ERRORS as error:
            raise _unavailable(error) from error


async def _keep_session(connection: Any) -> None:
    """Pool `reset` hook: nothing to undo (asyncpg still rolls back an open transaction)."""


def _unavailable(error: BaseException) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(
        f"the database connection failed ({type(error).__name__}: {error}); the call may not "
        "have been applied, and the store reconnects on the next call"
    )
