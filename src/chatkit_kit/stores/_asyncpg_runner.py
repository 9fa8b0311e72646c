"""An asyncpg connection running a store's `:name` statements as `$n`.

The one statement runner on asyncpg: `AsyncpgStore` runs every call on it, and
`SQLAlchemyStore` its single statements on PostgreSQL through asyncpg (the driver path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._sqlstore import Params, Row
from .sql.statements import NumberedStatements


class AsyncpgRunner:
    """Statements of the store that owns `numbered`, run on the asyncpg connection `driver`."""

    __slots__ = ("_driver", "_numbered")

    def __init__(self, numbered: NumberedStatements, driver: Any) -> None:
        self._numbered = numbered
        self._driver = driver

    async def fetch(self, sql: str, params: Params | None) -> Sequence[Row]:
        if params is None:
            rows: Sequence[Row] = await self._driver.fetch(sql)
            return rows
        query, args = self._numbered.args(sql, params)
        rows = await self._driver.fetch(query, *args)
        return rows

    async def fetch_value(self, sql: str, params: Params | None) -> Any:
        if params is None:
            return await self._driver.fetchval(sql)
        query, args = self._numbered.args(sql, params)
        return await self._driver.fetchval(query, *args)

    async def execute(self, sql: str, params: Params | None) -> None:
        if params is None:
            await self._driver.execute(sql)
            return
        query, args = self._numbered.args(sql, params)
        await self._driver.execute(query, *args)

    async def execute_count(self, sql: str, params: Params) -> int:
        query, args = self._numbered.args(sql, params)
        status: str = await self._driver.execute(query, *args)  # e.g. "DELETE 3"
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0
