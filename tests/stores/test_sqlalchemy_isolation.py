"""SQLAlchemyStore on an engine that sets an isolation level, given to `create_engine` or as an
execution option (`engine.execution_options(isolation_level=...)`): every write of the store is
stored (none runs in a transaction nobody commits), and the engine's own connections keep the
level it sets."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from chatkit.types import ThreadMetadata, UserMessageItem, UserMessageTextContent
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx

from .sql_support import MYSQL_FLAVOURS, Flavour

SQLALCHEMY_FLAVOURS = ("sqlite", "sqlalchemy+asyncpg", "sqlalchemy+psycopg", *MYSQL_FLAVOURS)
T0 = datetime(2026, 3, 4, 5, 6, 7)


def _level(flavour: Flavour) -> str:
    """An isolation level other than the backend's default."""
    return "SERIALIZABLE" if flavour.name == "sqlite" else "REPEATABLE READ"


def _engine(flavour: Flavour, how: str) -> AsyncEngine:
    if how == "create_engine":
        return create_async_engine(flavour.url, isolation_level=_level(flavour))
    return create_async_engine(flavour.url).execution_options(isolation_level=_level(flavour))


def _message(item_id: str) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id="t",
        created_at=T0,
        content=[UserMessageTextContent(text=item_id)],
        inference_options={},
    )


async def _stored(flavour: Flavour, ctx: Ctx) -> tuple[list[str], list[str]]:
    """The ids of `ctx`'s threads and of thread "t"'s items, read by a store of its own."""
    store: SQLAlchemyStore[Ctx] = SQLAlchemyStore(
        create_async_engine(flavour.url), schema=flavour.schema
    )
    try:
        threads = [t.id for t in (await store.load_threads(10, None, "asc", ctx)).data]
        items = [i.id for i in (await store.load_thread_items("t", None, 10, "asc", ctx)).data]
        return threads, items
    finally:
        await store.engine.dispose()


@pytest.mark.parametrize("flavour", SQLALCHEMY_FLAVOURS, indirect=True)
@pytest.mark.parametrize("how", ["create_engine", "execution_option"])
async def test_every_write_is_stored(flavour: Flavour, how: str) -> None:
    engine = _engine(flavour, how)
    store: SQLAlchemyStore[Ctx] = SQLAlchemyStore(engine, schema=flavour.schema)
    ctx = Ctx(f"isolation-{uuid.uuid4().hex}")
    try:
        await store.save_thread(ThreadMetadata(id="t", created_at=T0), ctx)
        await store.add_thread_item("t", _message("m1"), ctx)
        await store.add_thread_item("t", _message("m2"), ctx)
        await store.save_item("t", _message("m2").model_copy(update={"created_at": T0}), ctx)
        await store.delete_thread_item("t", "m1", ctx)
        assert await _stored(flavour, ctx) == (["t"], ["m2"])
        await store.delete_thread("t", ctx)
        assert await _stored(flavour, ctx) == ([], [])
        # The engine's own connections still get the level it sets, not the store's AUTOCOMMIT.
        async with engine.connect() as conn:
            assert await conn.get_isolation_level() == _level(flavour)
    finally:
        await engine.dispose()
