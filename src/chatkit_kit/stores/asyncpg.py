"""`AsyncpgStore`: the ChatKit store on an asyncpg connection pool (PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic

from chatkit.store import TContext
from typing_extensions import Self

from .._optional import require
from ..errors import DatabaseConfigurationError, DatabaseError, DatabaseUnavailableError
from . import _schema
from ._base import AttachmentPresenter
from ._dberrors import database_error, kind_of_sqlstate
from ._rules import OwnerResolver
from ._sql import numbered
from ._sqlstore import Params, Row, SQLStoreBase

asyncpg = require("asyncpg", "asyncpg", "AsyncpgStore")


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
        **pool_kwargs: Any,
    ) -> Self:
        """Create a store that owns a new pool for `dsn`; `close()` closes it.

        `pool_kwargs` go to `asyncpg.create_pool` (e.g. `min_size`, `max_size`, and
        `statement_cache_size=0` behind PgBouncer in transaction mode before 1.21).
        """
        _schema.Names.create("postgresql", schema, table_prefix)  # fail before connecting
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

    # The backend seam: one connection primitive, one error translator

    def _args(self, sql: str, params: Params) -> tuple[str, list[Any]]:
        converted = self._numbered.get(sql)
        if converted is None:
            converted = self._numbered[sql] = numbered(sql)
        query, names = converted
        return query, [params[name] for name in names]

    @asynccontextmanager
    async def _connect(self, *, transaction: bool) -> AsyncIterator[_Connection]:
        async with self._pool.acquire() as conn:
            try:
                if transaction:
                    async with conn.transaction():
                        yield _Connection(self, conn)
                else:
                    yield _Connection(self, conn)
            except asyncpg.PostgresError as error:
                # The server answered, so the pool's reset on release cleans up; but a
                # connection to a server going away or turned read-only (failover) is dropped.
                if isinstance(_translate(error), DatabaseUnavailableError):
                    conn.terminate()
                raise
            except BaseException:
                # A client-side or protocol failure, or a cancelled call: the connection's
                # state is unknown, so close it instead of handing it back to the pool.
                conn.terminate()
                raise

    def _translate(self, error: Exception) -> DatabaseError | None:
        return _translate(error)


class _Connection:
    """An asyncpg connection running the store's `:name` statements as `$n`."""

    __slots__ = ("_conn", "_store")

    def __init__(self, store: AsyncpgStore[Any], conn: Any) -> None:
        self._store = store
        self._conn = conn

    async def fetch(self, sql: str, params: Params | None) -> Sequence[Row]:
        if params is None:
            rows: Sequence[Row] = await self._conn.fetch(sql)
            return rows
        query, args = self._store._args(sql, params)
        rows = await self._conn.fetch(query, *args)
        return rows

    async def fetch_value(self, sql: str, params: Params | None) -> Any:
        if params is None:
            return await self._conn.fetchval(sql)
        query, args = self._store._args(sql, params)
        return await self._conn.fetchval(query, *args)

    async def execute(self, sql: str, params: Params | None) -> None:
        if params is None:
            await self._conn.execute(sql)
            return
        query, args = self._store._args(sql, params)
        await self._conn.execute(query, *args)


def _translate(error: Exception) -> DatabaseError | None:
    """The one place asyncpg's exceptions become `chatkit_kit.errors`."""
    if isinstance(error, asyncpg.PostgresError):
        if isinstance(error, asyncpg.exceptions.PostgresConnectionError):
            return database_error(DatabaseUnavailableError, error)
        return database_error(kind_of_sqlstate(getattr(error, "sqlstate", None)), error)
    if isinstance(error, asyncpg.exceptions.ClientConfigurationError):  # e.g. a bad sslmode
        return database_error(DatabaseConfigurationError, error)
    if isinstance(error, (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)):
        # "connection is closed", "another operation is in progress", a failed pool release
        # (which may come after the call was applied).
        return database_error(DatabaseUnavailableError, error)
    if isinstance(error, (OSError, asyncio.TimeoutError)):  # refused, reset, connect timeout
        return database_error(DatabaseUnavailableError, error)
    return None
