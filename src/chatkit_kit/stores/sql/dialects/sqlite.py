"""SQLite (aiosqlite): one writer at a time, BEGIN IMMEDIATE, WAL, errors by message."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from ....errors import DatabaseTimeoutError
from .base import CONFIGURATION_MESSAGES, SQLDialect, URLDriver
from .postgresql import ATTACHMENT_INDEXES

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a SQLite connection made by `from_url` waits for another writer's lock, unless the
store's `statement_timeout` says otherwise (the same default)."""


class SQLiteDialect(SQLDialect):
    name = "sqlite"
    title = "SQLite"
    backends = ("sqlite",)
    url_schemes: ClassVar[Mapping[str, str]] = {"sqlite": "sqlite"}
    drivers = (URLDriver("aiosqlite", "aiosqlite", "sqlalchemy"),)
    url_example = "sqlite:///path.db"
    tables_live_in = "one database file"
    no_schema_hint = "on SQLite use table_prefix to keep several stores apart in one database file"
    # BEGIN IMMEDIATE: a writer never fails to upgrade a read lock, and migrations serialize.
    begin = "BEGIN IMMEDIATE"
    autocommit_engine = True
    direct_driver = True
    # WAL lets readers run beside the writer; it cannot change inside a transaction.
    before_migrate = ("PRAGMA journal_mode=WAL",)
    # A local file: the one wait is for another writer's lock, which the busy timeout bounds
    # inside sqlite3 (cancelling the await would leave the statement running in the driver's
    # thread).
    client_statement_timeout = False

    # sqlite3 gives no SQLSTATE. "database is locked": the busy timeout expired waiting for
    # another writer.
    messages = (*CONFIGURATION_MESSAGES, (re.compile("locked|busy"), DatabaseTimeoutError))

    migrations: ClassVar[Mapping[int, tuple[str, ...]]] = {
        1: (
            # seq is the rowid: assigned max+1 on insert, kept by ON CONFLICT DO UPDATE.
            """CREATE TABLE {threads} (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER PRIMARY KEY,
    sort_key INTEGER NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (owner, id)
)""",
            "CREATE INDEX {threads_page_idx} ON {threads} (owner, sort_key, seq)",
            """CREATE TABLE {items} (
    owner TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER PRIMARY KEY,
    sort_key INTEGER NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (owner, thread_id, id)
)""",
            "CREATE INDEX {items_page_idx} ON {items} (owner, thread_id, sort_key, seq)",
        ),
        2: (
            """CREATE TABLE {attachments} (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    thread_id TEXT,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (owner, id)
)""",
        ),
        3: ATTACHMENT_INDEXES,
        4: (
            """CREATE TABLE {data_keys} (
    owner TEXT NOT NULL,
    version INTEGER NOT NULL,
    kek_id TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (owner, version)
)""",
        ),
    }
    create_versions = """CREATE TABLE IF NOT EXISTS {versions} (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)"""
    version_table_exists = (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = {versions_literal}"
    )

    def timestamp_parameter(self, moment: datetime) -> Any:
        return moment.strftime("%Y-%m-%d %H:%M:%S")  # CURRENT_TIMESTAMP text, UTC, whole seconds

    def statement_timeout_arguments(
        self, driver: str, kwargs: dict[str, Any], seconds: float | None
    ) -> None:
        # The busy timeout: how long a statement waits for another writer's lock.
        self.connect_arg_defaults(
            kwargs, timeout=BUSY_TIMEOUT_SECONDS if seconds is None else seconds
        )

    def engine_arguments(self, driver: str, kwargs: dict[str, Any], *, pgbouncer: bool) -> None:
        self.connect_arg_defaults(kwargs, timeout=BUSY_TIMEOUT_SECONDS)
        kwargs.setdefault("isolation_level", "AUTOCOMMIT")
        if kwargs["isolation_level"] == "AUTOCOMMIT":
            kwargs.setdefault("pool_reset_on_return", None)

    def configure_engine(self, engine: Any, kwargs: Mapping[str, Any]) -> None:
        from sqlalchemy import event

        try:  # SQLAlchemy 2.1 names it await_; 2.0 (what Python 3.10 installs) await_only.
            from sqlalchemy.util.concurrency import await_
        except ImportError:  # pragma: no cover - depends on the installed SQLAlchemy
            from sqlalchemy.util import await_only as await_  # type: ignore[no-redef,attr-defined,unused-ignore]

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            """Put every new connection in WAL mode (file databases keep it)."""
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
            finally:
                cursor.close()

        if kwargs.get("pool_reset_on_return", "rollback") is not None:
            return

        @event.listens_for(engine.sync_engine, "checkin")
        def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
            """Roll back a connection checked in with a transaction still open.

            Engines made by `from_url` skip the pool's blanket ROLLBACK on every check-in (one
            more hop to the driver's thread per call); this keeps the guarantee that no pooled
            connection holds a transaction.
            """
            driver = None if dbapi_connection is None else dbapi_connection.driver_connection
            if driver is not None and driver.in_transaction:
                await_(driver.rollback())
