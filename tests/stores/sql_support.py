"""Helpers for the SQL store tests: store flavours, fresh PostgreSQL schemas, admin SQL."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore

FLAVOURS = ("sqlite", "sqlalchemy+asyncpg", "sqlalchemy+psycopg", "asyncpg")
POSTGRES_FLAVOURS = FLAVOURS[1:]
PGBOUNCER_FLAVOURS = tuple(f"{name}@pgbouncer" for name in POSTGRES_FLAVOURS)
"""The PostgreSQL flavours through PgBouncer in transaction pooling mode (`pgbouncer=True`)."""


def new_schema_name() -> str:
    return f"ckt_{uuid.uuid4().hex[:12]}"


def sqlalchemy_url(dsn: str, driver: str) -> str:
    """`postgresql://...` turned into `postgresql+<driver>://...`."""
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1)


def admin_execute(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement with a short-lived autocommit connection; return its rows."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, params or None)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def assert_no_locks(dsn: str, tables: str) -> None:
    """Take ACCESS EXCLUSIVE locks on `tables` with NOWAIT; fails if any session holds a lock
    on them (e.g. a pooled connection left inside a transaction)."""
    with psycopg.connect(dsn) as conn:
        conn.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE NOWAIT")  # type: ignore[call-overload]
        conn.rollback()


def drop_schema(dsn: str, schema: str) -> None:
    admin_execute(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def fresh_schema(dsn: str) -> Iterator[str]:
    """A schema name nobody uses yet; the schema is dropped afterwards if it was created."""
    schema = new_schema_name()
    try:
        yield schema
    finally:
        drop_schema(dsn, schema)


@dataclass
class Flavour:
    """How to build one kind of SQL store against a given database."""

    name: str
    dsn: str | None  # PostgreSQL DSN (plain postgresql://), None for SQLite
    sqlite_path: Path | None = None
    schema: str | None = None  # the session's migrated PostgreSQL schema
    admin_dsn: str | None = None  # PostgreSQL itself, when `dsn` is PgBouncer

    @property
    def admin(self) -> str:
        """The DSN for admin statements (kill, lock, drop): PostgreSQL, never PgBouncer."""
        dsn = self.admin_dsn or self.dsn
        assert dsn is not None
        return dsn

    @property
    def is_postgres(self) -> bool:
        return self.dsn is not None

    @property
    def pgbouncer(self) -> bool:
        """Whether `dsn` is PgBouncer in transaction mode (the name ends in `@pgbouncer`)."""
        return self.name.endswith("@pgbouncer")

    @property
    def driver_name(self) -> str:
        return self.name.removesuffix("@pgbouncer")

    async def make(self, *, settings: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """A new store owning its engine or pool (on the session schema unless `schema=`).

        `settings` are PostgreSQL run-time settings for every connection of the store
        (e.g. statement_timeout, application_name), passed the way each driver takes them.
        """
        schema = kwargs.pop("schema", self.schema)
        if settings:
            if self.driver_name == "asyncpg":
                kwargs["server_settings"] = settings
            elif self.driver_name == "sqlalchemy+asyncpg":
                kwargs["connect_args"] = {"server_settings": settings}
            elif self.driver_name == "sqlalchemy+psycopg":
                rest = dict(settings)
                # application_name as its own libpq parameter: PgBouncer passes it on (it
                # drops `options`).
                connect_args = (
                    {"application_name": rest.pop("application_name")}
                    if ("application_name" in rest)
                    else {}
                )
                if rest:
                    connect_args["options"] = " ".join(f"-c {k}={v}" for k, v in rest.items())
                kwargs["connect_args"] = connect_args
        if self.name == "sqlite":
            assert self.sqlite_path is not None
            return SQLAlchemyStore.from_url(f"sqlite+aiosqlite:///{self.sqlite_path}", **kwargs)
        assert self.dsn is not None
        if self.pgbouncer:
            kwargs.setdefault("pgbouncer", True)
        pool_size = kwargs.pop("pool_size", 4)
        if self.driver_name == "asyncpg":
            return await AsyncpgStore.connect(
                self.dsn, schema=schema, min_size=1, max_size=pool_size, **kwargs
            )
        driver = self.driver_name.split("+", 1)[1]
        return SQLAlchemyStore.from_url(
            sqlalchemy_url(self.dsn, driver), schema=schema, pool_size=pool_size, **kwargs
        )
