"""Schema versioning, migrations, query plans and the MetaData of the SQL stores."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from chatkit.types import ThreadMetadata

from chatkit_kit.stores import SCHEMA_VERSION, SchemaVersionError, _codec, _schema
from chatkit_kit.stores._rules import sort_key
from chatkit_kit.stores.sql import statements as _sql
from tests.fixtures.context import Ctx

from .sql_support import Flavour, admin_execute, fresh_schema, mysql_execute, sqlalchemy_url

SRC = str(Path(__file__).resolve().parents[2] / "src")


ALICE = Ctx("alice")
T0 = datetime(2026, 1, 2, 3, 4, 5, 6)


def raw_execute(flavour: Flavour, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL on the flavour's database outside the store."""
    if flavour.is_mysql:
        assert flavour.dsn is not None
        return mysql_execute(flavour.dsn, sql)
    if flavour.is_postgres:
        assert flavour.dsn is not None
        return admin_execute(flavour.dsn, sql)
    assert flavour.sqlite_path is not None
    with closing(sqlite3.connect(flavour.sqlite_path)) as conn, conn:
        return list(conn.execute(sql).fetchall())


def names_of(flavour: Flavour) -> _schema.Names:
    dialect: _schema.Dialect = (
        "mysql" if flavour.is_mysql else "postgresql" if flavour.is_postgres else "sqlite"
    )
    return _schema.Names.create(dialect, flavour.schema, _schema.DEFAULT_TABLE_PREFIX)


async def test_migrate_from_an_empty_database(fresh: Flavour) -> None:
    async with await fresh.make() as store:
        assert await store.schema_version() == 0
        with pytest.raises(SchemaVersionError, match=r"have not been created.*migrate"):
            await store.load_thread("t", ALICE)
        assert await store.migrate() == SCHEMA_VERSION
        assert await store.migrate() == SCHEMA_VERSION
        await store.save_thread(ThreadMetadata(id="t", created_at=T0), ALICE)
        assert (await store.load_thread("t", ALICE)).created_at == T0
    versions = raw_execute(fresh, f"SELECT version FROM {names_of(fresh).versions} ORDER BY 1")
    assert [v for (v,) in versions] == [m.version for m in _schema.MIGRATIONS]
    if fresh.name == "sqlite":
        assert raw_execute(fresh, "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.parametrize("start", range(1, SCHEMA_VERSION))
async def test_migrate_from_every_earlier_version(fresh: Flavour, start: int) -> None:
    async with await fresh.make() as store:
        assert await store.migrate(target=start) == start
        # Rows written at the old version survive the upgrade.
        thread = ThreadMetadata(id="old", created_at=T0, title="kept \x00")
        payload = _codec.encode_thread(thread).replace("'", "''")
        raw_execute(
            fresh,
            f"INSERT INTO {names_of(fresh).threads} (owner, id, sort_key, payload) "
            f"VALUES ('alice', 'old', {sort_key(T0)}, '{payload}')",
        )
        with pytest.raises(SchemaVersionError, match=rf"at schema version {start}.*migrate"):
            await store.load_thread("old", ALICE)
    async with await fresh.make() as store:
        assert await store.migrate() == SCHEMA_VERSION
        assert await store.load_thread("old", ALICE) == thread


async def test_store_refuses_a_newer_schema(fresh: Flavour) -> None:
    async with await fresh.make() as store:
        await store.migrate()
    newer = SCHEMA_VERSION + 1
    raw_execute(
        fresh,
        f"INSERT INTO {names_of(fresh).versions} (version, description) "
        f"VALUES ({newer}, 'from the future')",
    )
    message = rf"schema version {newer}.*supports schema versions up to {SCHEMA_VERSION}"
    async with await fresh.make() as store:
        with pytest.raises(SchemaVersionError, match=message):
            await store.load_threads(5, None, "desc", ALICE)
        with pytest.raises(SchemaVersionError, match=message):
            await store.migrate()


def test_bad_schema_and_prefix_names_are_rejected() -> None:
    for schema in ("", "a b", 'x"; DROP', "1abc", "x" * 64):
        with pytest.raises(ValueError, match="schema"):
            _schema.Names.create("postgresql", schema, "p_")
    for prefix in ("a-b", '"', "1a", "x" * 41):
        with pytest.raises(ValueError, match="table prefix"):
            _schema.Names.create("postgresql", None, prefix)
    with pytest.raises(ValueError, match="PostgreSQL option"):
        _schema.Names.create("sqlite", "main", "p_")


@pytest.mark.parametrize(
    "schema", ["information_schema", "pg_catalog", "pg_toast", "pg_toast_temp_1", "PG_temp_3"]
)
def test_system_schemas_are_refused(schema: str) -> None:
    with pytest.raises(ValueError, match="system schema"):
        _schema.Names.create("postgresql", schema, "chatkit_")
    with pytest.raises(ValueError, match="system schema"):
        _schema.build_metadata(schema)


_MIGRATE_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from chatkit_kit.cli._options import DatabaseOptions, open_store
    from chatkit_kit.stores.sql.dialects import dialect_for_url

    async def main(url, schema):
        options = DatabaseOptions(url, dialect_for_url(url), schema or None, "chatkit_")
        store = await open_store(options)
        async with store:
            print(await store.migrate())

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.parametrize(
    # SQLAlchemy on asyncpg takes the same path as on psycopg; no need to race it too.
    "flavour",
    ["sqlite", "asyncpg", "sqlalchemy+psycopg", "mysql+asyncmy", "mysql+aiomysql"],
    indirect=True,
)
def test_concurrent_migrate_from_several_processes(fresh: Flavour) -> None:
    if fresh.is_mysql:
        url = fresh.url
    elif fresh.is_postgres:
        assert fresh.dsn is not None
        url = fresh.dsn if fresh.name == "asyncpg" else sqlalchemy_url(fresh.dsn, "psycopg")
    else:
        url = f"sqlite+aiosqlite:///{fresh.sqlite_path}"
    env = {**os.environ, "PYTHONPATH": SRC}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_SCRIPT, url, fresh.schema or ""],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs
    assert [out.strip() for out, _err in outputs] == [str(SCHEMA_VERSION)] * 4
    versions = raw_execute(fresh, f"SELECT version FROM {names_of(fresh).versions} ORDER BY 1")
    assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))


def test_metadata_matches_the_migrated_postgresql_schema(postgres_dsn: str) -> None:
    from sqlalchemy import create_engine, inspect

    with fresh_schema(postgres_dsn) as schema:
        for statement in _migration_statements(schema, "app_"):
            admin_execute(postgres_dsn, statement)
        engine = create_engine(sqlalchemy_url(postgres_dsn, "psycopg"))
        try:
            inspector = inspect(engine)
            metadata = _schema.build_metadata(schema, "app_")
            assert set(inspector.get_table_names(schema=schema)) == {
                t.name for t in metadata.sorted_tables
            }
            for table in metadata.sorted_tables:
                assert table.schema == schema
                columns = {c["name"]: c for c in inspector.get_columns(table.name, schema=schema)}
                assert list(columns) == [c.name for c in table.columns]
                for column in table.columns:
                    reflected = columns[column.name]
                    assert reflected["type"].compile(engine.dialect) == column.type.compile(
                        engine.dialect
                    ), column
                    assert reflected["nullable"] == column.nullable, column
                    assert bool(reflected.get("identity")) == (column.identity is not None)
                pk = inspector.get_pk_constraint(table.name, schema=schema)
                assert pk["constrained_columns"] == [c.name for c in table.primary_key.columns]
                indexes = {
                    i["name"]: i["column_names"]
                    for i in inspector.get_indexes(table.name, schema=schema)
                }
                assert indexes == {i.name: [c.name for c in i.columns] for i in table.indexes}, (
                    table.name
                )
        finally:
            engine.dispose()


def _migration_statements(schema: str, prefix: str) -> list[str]:
    names = _schema.Names.create("postgresql", schema, prefix)
    script = _schema.migration_script(names)
    body = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
    return [s.strip() for s in body.split(";\n") if s.strip() and s.strip() != ";"]


def _explain_postgres(dsn: str, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    query = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)
    used = {k: v for k, v in params.items() if f"%({k})s" in query}
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, used).fetchone()
    assert row is not None
    plan: dict[str, Any] = row[0][0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


def test_postgresql_page_queries_are_index_scans(postgres_dsn: str) -> None:
    with fresh_schema(postgres_dsn) as schema:
        names = _schema.Names.create("postgresql", schema, "chatkit_")
        for statement in _migration_statements(schema, "chatkit_"):
            admin_execute(postgres_dsn, statement)
        # 20 000 items in one thread among 4 threads, 2 000 threads for the owner.
        admin_execute(
            postgres_dsn,
            f"INSERT INTO {names.items} (owner, thread_id, id, sort_key, payload) "
            "SELECT 'alice', 't' || (g % 4), 'm' || g, g / 3, repeat('x', 200) "
            "FROM generate_series(1, 80000) g",
        )
        admin_execute(
            postgres_dsn,
            f"INSERT INTO {names.threads} (owner, id, sort_key, payload) "
            "SELECT 'o' || (g % 2), 't' || g, g / 3, repeat('x', 200) "
            "FROM generate_series(1, 4000) g",
        )
        admin_execute(postgres_dsn, f"ANALYZE {names.items}")
        admin_execute(postgres_dsn, f"ANALYZE {names.threads}")
        statements = _sql.Statements(names)
        for order in ("asc", "desc"):
            for with_cursor in (False, True):
                cases = [
                    (
                        statements.items_page(order, with_cursor),
                        {"owner": "alice", "thread_id": "t1", "after": "m4001", "limit": 21},
                        names.raw("thread_items_page_idx"),
                    ),
                    (
                        statements.threads_page(order, with_cursor),
                        {"owner": "o1", "after": "t2001", "limit": 21},
                        names.raw("threads_page_idx"),
                    ),
                ]
                for sql, params, index in cases:
                    plan = _explain_postgres(postgres_dsn, sql, params)
                    nodes = _nodes(plan)
                    kinds = [n["Node Type"] for n in nodes]
                    assert "Sort" not in kinds, (sql, kinds)
                    assert "Seq Scan" not in kinds, (sql, kinds)
                    assert plan["Node Type"] == "Limit"
                    scans = [n for n in nodes if n.get("Index Name") == index]
                    assert scans and scans[0]["Actual Rows"] <= 21, (sql, json.dumps(plan))
                    # Limit directly over the page index scan: no more than limit+1 rows read.
                    assert plan["Actual Rows"] == 21


def test_sqlite_page_queries_use_the_page_index(tmp_path: Path) -> None:
    names = _schema.Names.create("sqlite", None, "chatkit_")
    with closing(sqlite3.connect(tmp_path / "plan.db")) as conn, conn:
        conn.executescript(_schema.migration_script(names))
        statements = _sql.Statements(names)
        for order in ("asc", "desc"):
            for with_cursor in (False, True):
                for sql, index in (
                    (statements.items_page(order, with_cursor), "thread_items_page_idx"),
                    (statements.threads_page(order, with_cursor), "threads_page_idx"),
                ):
                    params = {"owner": "a", "thread_id": "t", "after": "x", "limit": 21}
                    used = {k: v for k, v in params.items() if f":{k}" in sql}
                    plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, used))
                    assert f"INDEX chatkit_{index}" in plan, plan
                    assert "TEMP B-TREE" not in plan, plan


def test_postgresql_attachment_queries_use_their_indexes(postgres_dsn: str) -> None:
    with fresh_schema(postgres_dsn) as schema:
        names = _schema.Names.create("postgresql", schema, "chatkit_")
        for statement in _migration_statements(schema, "chatkit_"):
            admin_execute(postgres_dsn, statement)
        # 60 000 attachments of 300 owners; one in 20 unattached, spread over a year.
        admin_execute(
            postgres_dsn,
            f"INSERT INTO {names.attachments} (owner, id, thread_id, payload, created_at) "
            "SELECT 'o' || (g % 300), 'a' || g, "
            "CASE WHEN g % 20 = 0 THEN NULL ELSE 't' || (g % 3000) END, "
            "repeat('x', 200), now() - (g || ' minutes')::interval "
            "FROM generate_series(1, 60000) g",
        )
        admin_execute(postgres_dsn, f"ANALYZE {names.attachments}")
        statements = _sql.Statements(names)
        cases: list[tuple[str, dict[str, Any], str, bool]] = [
            (
                statements.thread_attachments,
                {"owner": "o7", "thread_id": "t7"},
                names.raw("attachments_thread_idx"),
                False,
            ),
            (
                statements.unattached_attachments,
                {"before": datetime.now(timezone.utc), "limit": 100},
                names.raw("attachments_orphan_idx"),
                True,
            ),
        ]
        for sql, params, index, ordered in cases:
            plan = _explain_postgres(postgres_dsn, sql, params)
            nodes = _nodes(plan)
            kinds = [n["Node Type"] for n in nodes]
            assert "Seq Scan" not in kinds, (sql, kinds)
            assert any(n.get("Index Name") == index for n in nodes), (sql, json.dumps(plan))
            if ordered:  # the sweep reads the partial index in order: no sort, limit rows
                assert "Sort" not in kinds, (sql, kinds)
                assert plan["Actual Rows"] == 100


def test_sqlite_attachment_queries_use_their_indexes(tmp_path: Path) -> None:
    names = _schema.Names.create("sqlite", None, "chatkit_")
    with closing(sqlite3.connect(tmp_path / "plan.db")) as conn, conn:
        conn.executescript(_schema.migration_script(names))
        statements = _sql.Statements(names)
        for sql, params, index in (
            (
                statements.thread_attachments,
                {"owner": "a", "thread_id": "t"},
                "attachments_thread_idx",
            ),
            (
                statements.unattached_attachments,
                {"before": "2026-01-01 00:00:00", "limit": 100},
                "attachments_orphan_idx",
            ),
        ):
            plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert f"INDEX chatkit_{index}" in plan, plan
        orphan_plan = " | ".join(
            r[3]
            for r in conn.execute(
                "EXPLAIN QUERY PLAN " + statements.unattached_attachments,
                {"before": "2026-01-01 00:00:00", "limit": 100},
            )
        )
        assert "TEMP B-TREE" not in orphan_plan, orphan_plan


async def test_a_migration_failing_midway_says_whether_part_of_it_applied(fresh: Flavour) -> None:
    """A hand-made attachments table is in the way. Where DDL is transactional (PostgreSQL,
    SQLite) the whole migration is rolled back: not applied, version 0. MySQL/MariaDB commits
    each DDL statement: versions 1 and 2 stay, and the error says it may have applied."""
    from chatkit_kit.errors import DatabaseError

    if fresh.name == "sqlite":
        assert fresh.sqlite_path is not None
        with closing(sqlite3.connect(fresh.sqlite_path)) as conn:
            conn.execute("CREATE TABLE chatkit_attachments (x INTEGER)")
            conn.commit()
    elif fresh.is_mysql:
        assert fresh.dsn is not None
        mysql_execute(fresh.dsn, "CREATE TABLE chatkit_attachments (x INT)")
    else:
        assert fresh.dsn is not None
        admin_execute(fresh.dsn, f'CREATE SCHEMA "{fresh.schema}"')
        admin_execute(fresh.dsn, f'CREATE TABLE "{fresh.schema}".chatkit_attachments (x int)')
    store = await fresh.make()
    try:
        with pytest.raises(DatabaseError) as raised:
            await store.migrate()
        assert not raised.value.retryable
        if fresh.is_mysql:
            assert raised.value.may_have_applied
            assert await store.schema_version() == 2
        else:
            assert not raised.value.may_have_applied, repr(raised.value)
            assert await store.schema_version() == 0
    finally:
        await store.close()
