"""SQLAlchemyStore on SQLite runs statements on the pooled aiosqlite connection itself: the
guarantees of the SQLAlchemy path still hold (transactions, error translation, clean pool)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from chatkit.types import ThreadMetadata
from sqlalchemy.ext.asyncio import create_async_engine

from chatkit_kit.errors import DatabaseTimeoutError
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from chatkit_kit.testing.retention import _message

CTX = {"user_id": "u"}


async def test_a_connection_checked_in_mid_transaction_is_rolled_back(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    async with SQLAlchemyStore.from_url(url, connect_args={"timeout": 1}) as store:
        await store.migrate()
        async with store.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.execute("BEGIN IMMEDIATE")
            await raw.execute(
                "INSERT INTO chatkit_threads (owner, id, sort_key, payload) "
                "VALUES ('u', 'ghost', 0, '{}')"
            )
            assert raw.in_transaction
        # Checked back in: rolled back, so the write lock is free and the row is gone.
        thread = ThreadMetadata(id="t", created_at=datetime(2026, 1, 1))
        await store.save_thread(thread, CTX)
        assert [t.id for t in (await store.load_threads(10, None, "asc", CTX)).data] == ["t"]


async def test_an_engine_you_pass_in_works_the_same(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    store: SQLAlchemyStore[dict[str, str]] = SQLAlchemyStore(engine)
    try:
        await store.migrate()
        await store.save_thread(ThreadMetadata(id="t", created_at=datetime(2026, 1, 1)), CTX)
        await store.add_thread_item("t", _message("t", "m1", datetime(2026, 1, 2)), CTX)
        await store.delete_thread("t", CTX)  # the two-statement transaction
        assert (await store.load_thread_items("t", None, 10, "asc", CTX)).data == []
    finally:
        await engine.dispose()


async def test_a_locked_database_is_a_timeout_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with SQLAlchemyStore.from_url(url, connect_args={"timeout": 0.2}) as store:
        await store.migrate()
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(DatabaseTimeoutError, match="locked"):
                await store.save_thread(
                    ThreadMetadata(id="t", created_at=datetime(2026, 1, 1)), CTX
                )
            other.execute("ROLLBACK")
        finally:
            other.close()
        await store.save_thread(ThreadMetadata(id="t", created_at=datetime(2026, 1, 1)), CTX)
