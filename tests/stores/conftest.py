"""Fixtures for the SQL store tests.

PostgreSQL tests work in one fresh schema per test session (dropped at the end), MariaDB tests
in one fresh database per session (dropped at the end); tests that need an empty schema or
database of their own (migrations) use `fresh`. Each `sql_store` gets a
unique owner namespace, so tests sharing the session schema never see each other's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatkit_kit.stores import default_owner

from .sql_support import (
    FLAVOURS,
    MYSQL_FLAVOURS,
    PGBOUNCER_FLAVOURS,
    POSTGRES_FLAVOURS,
    Flavour,
    create_database,
    drop_database,
    drop_schema,
    migrated_mysql_database,
    migrated_pg_schema,
    migrated_sqlite_db,
    new_schema_name,
)


@pytest.fixture(scope="session")
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A migrated schema for this test session, shared by every PostgreSQL flavour."""
    with migrated_pg_schema(postgres_dsn) as schema:
        yield schema


@pytest.fixture(scope="session")
def mysql_database(mariadb_url: str) -> Iterator[str]:
    """The URL of a migrated MariaDB database for this test session, dropped at the end."""
    with migrated_mysql_database(mariadb_url) as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_db(tmp_path_factory.mktemp("sqlite") / "store.db")


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Flavour:
    """One SQL store flavour; server flavours skip (fail under CI) without their server."""
    if request.param == "sqlite":
        return Flavour("sqlite", None, request.getfixturevalue("sqlite_db"))
    if request.param in MYSQL_FLAVOURS:
        return Flavour(request.param, request.getfixturevalue("mysql_database"))
    dsn: str = request.getfixturevalue("postgres_dsn")
    return Flavour(request.param, dsn, schema=request.getfixturevalue("pg_schema"))


@pytest.fixture(params=POSTGRES_FLAVOURS + PGBOUNCER_FLAVOURS)
def pg_flavour(request: pytest.FixtureRequest, postgres_dsn: str, pg_schema: str) -> Flavour:
    """One of the PostgreSQL store flavours, directly or through PgBouncer (transaction mode)."""
    if request.param in PGBOUNCER_FLAVOURS:
        dsn: str = request.getfixturevalue("pgbouncer_dsn")
        return Flavour(request.param, dsn, schema=pg_schema, admin_dsn=postgres_dsn)
    return Flavour(request.param, postgres_dsn, schema=pg_schema)


@pytest.fixture(params=POSTGRES_FLAVOURS)
def direct_pg_flavour(request: pytest.FixtureRequest, postgres_dsn: str, pg_schema: str) -> Flavour:
    """One of the PostgreSQL store flavours, connected to PostgreSQL directly."""
    return Flavour(request.param, postgres_dsn, schema=pg_schema)


@pytest.fixture(params=MYSQL_FLAVOURS)
def mysql_flavour(request: pytest.FixtureRequest, mysql_database: str) -> Flavour:
    """SQLAlchemyStore on MariaDB through one of the async drivers."""
    return Flavour(request.param, mysql_database)


@pytest.fixture
async def sql_store(flavour: Flavour, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A store of `flavour` on the session's migrated tables, in an owner namespace of its own."""
    namespace = uuid.uuid4().hex[:8]
    schema = request.getfixturevalue("pg_schema") if flavour.is_postgres else None
    store = await flavour.make(schema=schema, owner=lambda ctx: f"{namespace}:{default_owner(ctx)}")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def fresh(flavour: Flavour, tmp_path: Path) -> Iterator[Flavour]:
    """`flavour` pointed at an empty database: a new PostgreSQL schema, MariaDB database or
    SQLite file."""
    if flavour.is_mysql:
        assert flavour.dsn is not None
        url = create_database(flavour.dsn)
        try:
            yield Flavour(flavour.name, url)
        finally:
            drop_database(url)
        return
    if not flavour.is_postgres:
        yield Flavour("sqlite", None, tmp_path / "fresh.db")
        return
    assert flavour.dsn is not None
    fresh = Flavour(flavour.name, flavour.dsn, schema=new_schema_name())
    try:
        yield fresh
    finally:
        drop_schema(flavour.dsn, str(fresh.schema))
