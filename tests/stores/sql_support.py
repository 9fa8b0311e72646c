"""Helpers for the SQL store tests: store flavours, fresh PostgreSQL schemas and MariaDB
databases, admin SQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pymysql

from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore

POSTGRES_FLAVOURS = ("sqlalchemy+asyncpg", "sqlalchemy+psycopg", "asyncpg")
MYSQL_FLAVOURS = ("mysql+asyncmy", "mysql+aiomysql")
"""SQLAlchemyStore on MariaDB (or MySQL) through each async driver."""
FLAVOURS = ("sqlite", *POSTGRES_FLAVOURS, *MYSQL_FLAVOURS)
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
        cur.execute(sql, params or None)
        return cur.fetchall() if cur.description else []


def assert_no_locks(dsn: str, tables: str) -> None:
    """Take ACCESS EXCLUSIVE locks on `tables` with NOWAIT; fails if any session holds a lock
    on them (e.g. a pooled connection left inside a transaction).

    On MariaDB (a `mysql://` URL): LOCK TABLES ... WRITE with a 1 s metadata lock wait, which
    fails while any connection's open transaction has touched one of the tables.
    """
    if dsn.startswith("mysql://"):
        mysql_script(
            dsn,
            [
                "SET SESSION lock_wait_timeout = 1",
                "LOCK TABLES " + ", ".join(f"{t} WRITE" for t in tables.split(", ")),
                "UNLOCK TABLES",
            ],
        )
        return
    with psycopg.connect(dsn) as conn:
        conn.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE NOWAIT")
        conn.rollback()


def drop_schema(dsn: str, schema: str) -> None:
    admin_execute(dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def mysql_connect(url: str, database: str | None) -> Any:
    """A PyMySQL connection (autocommit, utf8mb4) as the URL's user, to `database` if given."""
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database,
        charset="utf8mb4",
        autocommit=True,
    )


def database_of(url: str) -> str:
    """The database a `mysql://.../db` URL names."""
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, database: str) -> str:
    """`url` pointed at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def mysql_execute(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement in the URL's database (backslashes in literals are plain characters)."""
    return mysql_script(url, [sql], params)


def mysql_script(
    url: str, statements: list[str], params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """Run statements on one connection (as a DBA's client would); return the last one's rows."""
    conn = mysql_connect(url, database_of(url) or None)
    rows: list[tuple[Any, ...]] = []
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
            for sql in statements:
                cur.execute(sql, (params or None) if "%s" in sql else None)
                rows = list(cur.fetchall()) if cur.description else []
        return rows
    finally:
        conn.close()


def create_database(server_url: str) -> str:
    """A new, empty utf8mb4 database on the server; returns a URL naming it."""
    database = new_schema_name()
    mysql_execute(
        with_database(server_url, ""),
        f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    )
    return with_database(server_url, database)


def drop_database(url: str) -> None:
    database = database_of(url)
    assert database.startswith("ckt_"), database
    mysql_execute(with_database(url, ""), f"DROP DATABASE IF EXISTS `{database}`")


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """The URL of a new database, dropped afterwards."""
    url = create_database(server_url)
    try:
        yield url
    finally:
        drop_database(url)


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
    # PostgreSQL DSN (plain postgresql://), MariaDB URL naming the database (plain mysql://),
    # None for SQLite
    dsn: str | None
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
    def is_mysql(self) -> bool:
        return self.name in MYSQL_FLAVOURS

    @property
    def is_postgres(self) -> bool:
        return self.dsn is not None and not self.is_mysql

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of a SQLAlchemyStore flavour."""
        if self.name == "sqlite":
            return f"sqlite+aiosqlite:///{self.sqlite_path}"
        assert self.dsn is not None
        if self.is_mysql:
            return self.dsn.replace("mysql://", f"{self.name}://", 1)
        return sqlalchemy_url(self.dsn, self.driver_name.split("+", 1)[1])

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
        if self.is_mysql:
            return SQLAlchemyStore.from_url(self.url, pool_size=pool_size, **kwargs)
        if self.driver_name == "asyncpg":
            return await AsyncpgStore.connect(
                self.dsn, schema=schema, min_size=1, max_size=pool_size, **kwargs
            )
        driver = self.driver_name.split("+", 1)[1]
        return SQLAlchemyStore.from_url(
            sqlalchemy_url(self.dsn, driver), schema=schema, pool_size=pool_size, **kwargs
        )


@contextlib.contextmanager
def migrated_pg_schema(dsn: str) -> Iterator[str]:
    """A new PostgreSQL schema, migrated; dropped afterwards."""
    schema = new_schema_name()

    async def migrate() -> None:
        async with await AsyncpgStore.connect(dsn, schema=schema) as store:
            await store.migrate()

    try:
        asyncio.run(migrate())
        yield schema
    finally:
        drop_schema(dsn, schema)


@contextlib.contextmanager
def migrated_mysql_database(server_url: str) -> Iterator[str]:
    """The URL of a new MariaDB database on `server_url`'s server, migrated; dropped afterwards."""
    url = create_database(server_url)

    async def migrate() -> None:
        async with await Flavour(MYSQL_FLAVOURS[0], url).make() as store:
            await store.migrate()

    try:
        asyncio.run(migrate())
        yield url
    finally:
        drop_database(url)


def migrated_sqlite_db(path: Path) -> Path:
    """`path`, a migrated SQLite database."""

    async def migrate() -> None:
        async with await Flavour("sqlite", None, path).make() as store:
            await store.migrate()

    asyncio.run(migrate())
    return path
