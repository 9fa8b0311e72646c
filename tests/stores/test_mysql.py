"""What is particular to SQLAlchemyStore on MySQL/MariaDB, against the real MariaDB server.

Binary-exact keys, byte-limit keys, exact payload bytes, query plans (MariaDB's ANALYZE FORMAT=JSON
and sequence tables), concurrency (a real InnoDB deadlock the store retries), error translation,
URL resolution, cross-driver reads and the CLI.
The behaviour every SQL store shares runs on MariaDB through the parametrized SQL store tests
and the conformance suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncmy
import pymysql
import pytest
from chatkit.store import NotFoundError
from chatkit.types import FileAttachment, ThreadMetadata
from sqlalchemy.ext.asyncio import create_async_engine

from chatkit_kit._install import install_command
from chatkit_kit.cli import main
from chatkit_kit.errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    DeadlockError,
    MissingDependencyError,
)
from chatkit_kit.stores import SCHEMA_VERSION, _codec, _rules, _schema, resolve_database_url
from chatkit_kit.stores.sql import statements as _sql
from chatkit_kit.stores.sql.dialects import base as dialect_base
from chatkit_kit.stores.sql.dialects import mysql as _mysql
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx

from .sql_support import (
    MYSQL_FLAVOURS,
    Flavour,
    assert_no_locks,
    database_of,
    fresh_database,
    mysql_connect,
    mysql_execute,
    mysql_script,
    with_database,
)
from .test_sql_connection import TcpProxy, _via
from .test_sql_faults import (
    check_delete_thread_racing_item_writes,
    check_killed_connections_during_concurrent_writes,
)
from .test_sql_stores import T0, user_message

pytestmark = pytest.mark.mysql


ALICE = Ctx("alice")
NAMES = _schema.Names.create("mysql", None, _schema.DEFAULT_TABLE_PREFIX)


@pytest.fixture
async def store(mysql_flavour: Flavour) -> AsyncIterator[Any]:
    """A store on the session database whose owner keys are unique to the test."""
    namespace = uuid.uuid4().hex[:8]
    store = await mysql_flavour.make(owner=lambda ctx: f"{namespace}:{ctx.user_id}")
    try:
        yield store
    finally:
        await store.close()


async def test_keys_compare_byte_for_byte(store: Any) -> None:
    ids = ["Thr", "thr", "thr ", "thr\t", "thé", "the\u0301"]  # case, trailing space, NFC/NFD
    for n, thread_id in enumerate(ids):
        await store.save_thread(ThreadMetadata(id=thread_id, created_at=T0, title=str(n)), ALICE)
        await store.add_thread_item(thread_id, user_message("m", T0, text=str(n)), ALICE)
        await store.save_attachment(
            FileAttachment(id=thread_id, name=f"{n}.txt", mime_type="text/plain"), ALICE
        )
    for n, thread_id in enumerate(ids):
        assert (await store.load_thread(thread_id, ALICE)).title == str(n)
        item = await store.load_item(thread_id, "m", ALICE)
        assert item.content[0].text == str(n)
        assert (await store.load_attachment(thread_id, ALICE)).name == f"{n}.txt"
    page = await store.load_threads(10, None, "asc", ALICE)
    assert sorted(t.id for t in page.data) == sorted(ids)
    # Owners differing only in case or trailing space are different owners.
    for other in (Ctx("ALICE"), Ctx("alice ")):
        assert (await store.load_threads(10, None, "asc", other)).data == []
        with pytest.raises(NotFoundError):
            await store.load_thread("Thr", other)
    await store.delete_thread("thr ", ALICE)
    assert sorted(t.id for t in (await store.load_threads(10, None, "asc", ALICE)).data) == sorted(
        set(ids) - {"thr "}
    )


async def test_keys_at_the_byte_limits_fit_the_index(mysql_flavour: Flavour) -> None:
    """The widest owner and ids (4-byte characters) are stored, paged and found again."""
    owner = "\U0001f600" * (_rules.MAX_OWNER_BYTES // 4)
    assert len(owner.encode()) == _rules.MAX_OWNER_BYTES == 1024
    wide = [("\U0001f600" * (_rules.MAX_ID_BYTES // 4 - 1)) + f"{n:04d}" for n in range(3)]
    assert {len(i.encode()) for i in wide} == {_rules.MAX_ID_BYTES} == {512}
    async with await mysql_flavour.make(owner=lambda ctx: owner) as store:
        thread_id = wide[0]
        await store.save_thread(ThreadMetadata(id=thread_id, created_at=T0), ALICE)
        for n, item_id in enumerate(wide):
            await store.add_thread_item(
                thread_id, user_message(item_id, T0 + timedelta(seconds=n)), ALICE
            )
        first = await store.load_thread_items(thread_id, None, 1, "asc", ALICE)
        assert first.after == wide[0] and first.has_more
        rest = await store.load_thread_items(thread_id, first.after, 5, "asc", ALICE)
        assert [i.id for i in rest.data] == wide[1:]
        assert (await store.load_thread(thread_id, ALICE)).id == thread_id
        with pytest.raises(ValueError, match="bytes"):
            await store.save_thread(ThreadMetadata(id=wide[0] + "x", created_at=T0), ALICE)


async def test_payloads_are_stored_exactly_as_the_codec_wrote_them(
    store: Any, mysql_flavour: Flavour
) -> None:
    aware = T0.replace(tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    thread = ThreadMetadata(
        id="exact",
        created_at=aware,
        title="\U0001f600 \U00020000 nul\x00 quote' back\\slash",
        metadata={"z": 1.0, "a": [1e300, -0.0, 12345678901234567890], "\x00": None},
    )
    await store.save_thread(thread, ALICE)
    ((payload,),) = mysql_execute(
        str(mysql_flavour.dsn),
        f"SELECT payload FROM {NAMES.threads} WHERE owner = %s AND id = %s",
        (store.owner_key(ALICE), "exact"),
    )
    assert payload == _codec.encode_thread(thread)  # same text: keys not reordered, numbers kept
    assert json.loads(payload)["metadata"]["a"][2] == 12345678901234567890
    loaded = await store.load_thread("exact", ALICE)
    assert loaded == thread and loaded.created_at.utcoffset() == aware.utcoffset()
    assert loaded.created_at.microsecond == 123456


def test_ddl_types() -> None:
    ddl = " ".join(" ".join(_mysql.MySQLDialect.migrations[m.version]) for m in _schema.MIGRATIONS)
    assert " JSON" not in ddl.upper()
    assert "payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" in ddl
    assert "owner VARBINARY(1024)" in ddl and "id VARBINARY(512)" in ddl
    assert _rules.MAX_OWNER_BYTES == 1024 and _rules.MAX_ID_BYTES == 512
    # Every schema version has its MySQL statements.
    assert sorted(_mysql.MySQLDialect.migrations) == [m.version for m in _schema.MIGRATIONS]


def _analyze(url: str, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """MariaDB's ANALYZE FORMAT=JSON of one of the store's `:name` statements (it runs it)."""
    names = [name for name in params if f":{name}" in sql]
    query = sql
    values: list[Any] = []
    while True:
        positions = [(query.find(f":{n}"), n) for n in names if f":{n}" in query]
        if not positions:
            break
        at, name = min(positions)
        query = query[:at] + "%s" + query[at + len(name) + 1 :]
        values.append(params[name])
    (row,) = mysql_execute(url, "ANALYZE FORMAT=JSON " + query, tuple(values))
    plan: dict[str, Any] = json.loads(row[0])
    # The handler counters of one run: index entries actually read, whatever ICP filtered.
    status = mysql_script(
        url,
        ["FLUSH STATUS", query, "SHOW SESSION STATUS LIKE 'Handler_read%'"],
        tuple(values),
    )
    plan["handler_reads"] = sum(
        int(value) for name, value in status if name.lower() in _INDEX_READS
    )
    return plan


_INDEX_READS = {"handler_read_key", "handler_read_next", "handler_read_prev"}


def _tables(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "table_name" in node:
            found.append(node)
        for value in node.values():
            found.extend(_tables(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_tables(value))
    return found


def test_page_and_attachment_queries_use_their_indexes(mariadb_url: str) -> None:
    with fresh_database(mariadb_url) as url:
        mysql_script(url, _script_statements(_schema.migration_script(NAMES)))
        # 80 000 items in 4 threads of one owner, 4 000 threads for 2 owners (MariaDB's
        # sequence engine makes the rows).
        mysql_execute(
            url,
            f"INSERT INTO {NAMES.items} (owner, thread_id, id, sort_key, payload) "
            "SELECT 'alice', CONCAT('t', seq % 4), CONCAT('m', seq), seq DIV 3, REPEAT('x', 200) "
            "FROM seq_1_to_80000",
        )
        mysql_execute(
            url,
            f"INSERT INTO {NAMES.threads} (owner, id, sort_key, payload) "
            "SELECT CONCAT('o', seq % 2), CONCAT('t', seq), seq DIV 3, REPEAT('x', 200) "
            "FROM seq_1_to_4000",
        )
        mysql_execute(
            url,
            f"INSERT INTO {NAMES.attachments} (owner, id, thread_id, payload, created_at) "
            "SELECT CONCAT('o', seq % 50), CONCAT('a', seq), IF(seq % 10 = 0, NULL, "
            "CONCAT('t', seq % 40)), '{}', '2026-01-01' + INTERVAL seq SECOND "
            "FROM seq_1_to_20000",
        )
        for table_name in (NAMES.items, NAMES.threads, NAMES.attachments):
            mysql_execute(url, f"ANALYZE TABLE {table_name}")
        statements = _sql.Statements(NAMES)
        for order in ("asc", "desc"):
            for with_cursor in (False, True):
                cases = [
                    (
                        statements.items_page(order, with_cursor),
                        {"owner": "alice", "thread_id": "t1", "after": "m40001", "limit": 21},
                        "chatkit_thread_items_page_idx",
                    ),
                    (
                        statements.threads_page(order, with_cursor),
                        {"owner": "o1", "after": "t2001", "limit": 21},
                        "chatkit_threads_page_idx",
                    ),
                ]
                for sql, params, index in cases:
                    plan = _analyze(url, sql, params)
                    text = json.dumps(plan)
                    assert "filesort" not in text, (sql, text)
                    scanned = [t for t in _tables(plan) if t["table_name"] == "t"]
                    assert scanned and scanned[0]["key"] == index, (sql, text)
                    expected = "range" if with_cursor else "ref"
                    assert scanned[0]["access_type"] == expected, (sql, text)
                    # Only the page (limit + 1 rows) is read from the page index.
                    assert scanned[0]["r_rows"] <= 21, (sql, text)
                    assert plan["handler_reads"] <= 21 + 3, (sql, plan["handler_reads"])
                    cursors = [t for t in _tables(plan) if t["table_name"] == "c"]
                    assert all(c["access_type"] == "const" for c in cursors), (sql, text)
        listing = _analyze(url, statements.thread_attachments, {"owner": "o1", "thread_id": "t1"})
        (table,) = _tables(listing)
        assert table["key"] == "chatkit_attachments_thread_idx", listing
        assert "filesort" not in json.dumps(listing)
        orphans = _analyze(
            url,
            statements.unattached_attachments,
            {"before": datetime(2026, 1, 1, 0, 10), "limit": 10},
        )
        (table,) = _tables(orphans)
        assert table["key"] == "chatkit_attachments_orphan_idx", orphans
        assert "filesort" not in json.dumps(orphans)
        assert table["r_rows"] <= 10, orphans
        assert orphans["handler_reads"] <= 10 + 2, orphans["handler_reads"]


def _script_statements(script: str) -> list[str]:
    body = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
    return [s.strip() for s in body.split(";\n") if s.strip() and s.strip() != ";"]


@pytest.mark.parametrize("fail", [False, True])
async def test_a_transaction_on_the_autocommit_engine_is_all_or_nothing(
    store: Any, fail: bool
) -> None:
    """`from_url` engines are autocommit; `_connection(transaction=True)` opens a real one.

    No store call needs two statements on MySQL today; this keeps that path honest for when
    one does: two writes commit together, or a failure between them leaves neither.
    """

    def params(thread_id: str) -> dict[str, Any]:
        thread = ThreadMetadata(id=thread_id, created_at=T0)
        return {
            "owner": store.owner_key(ALICE),
            "id": thread_id,
            "sort_key": 0,
            "payload": _codec.encode_thread(thread),
        }

    class Interrupted(Exception):
        pass

    with contextlib.suppress(Interrupted):
        async with store._connection(transaction=True) as conn:
            await conn.execute(store._sql.upsert_thread, params("first"))
            if fail:
                raise Interrupted
            await conn.execute(store._sql.upsert_thread, params("second"))
    page = await store.load_threads(10, None, "asc", ALICE)
    assert sorted(t.id for t in page.data) == ([] if fail else ["first", "second"])
    assert store.engine.pool.checkedout() == 0


async def test_concurrent_adds_to_one_thread_all_land_in_order(mysql_flavour: Flavour) -> None:
    owner = f"{uuid.uuid4().hex}:alice"
    stores = [await mysql_flavour.make(owner=lambda ctx: owner) for _ in range(3)]
    try:
        await stores[0].save_thread(ThreadMetadata(id="busy", created_at=T0), ALICE)
        items = [user_message(f"m{n:03d}", T0 + timedelta(microseconds=n)) for n in range(90)]
        await asyncio.gather(
            *(stores[n % 3].add_thread_item("busy", item, ALICE) for n, item in enumerate(items)),
            *(stores[n % 3].save_item("busy", items[n], ALICE) for n in range(0, 90, 7)),
        )
        page = await stores[1].load_thread_items("busy", None, 100, "asc", ALICE)
        assert [i.id for i in page.data] == [i.id for i in items]
    finally:
        for store in stores:
            await store.close()


async def test_concurrent_migrate_in_one_process(mariadb_url: str) -> None:
    with fresh_database(mariadb_url) as url:
        stores = [
            SQLAlchemyStore.from_url(Flavour(driver, url).url) for driver in MYSQL_FLAVOURS * 3
        ]
        try:
            assert await asyncio.gather(*(s.migrate() for s in stores)) == [SCHEMA_VERSION] * 6
        finally:
            for store in stores:
                await store.close()
        versions = mysql_execute(url, f"SELECT version FROM {NAMES.versions} ORDER BY 1")
        assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))


def _innodb_deadlocks(url: str) -> int:
    ((_name, value),) = mysql_execute(url, "SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
    return int(value)


async def _raw_connection(url: str) -> Any:
    parts = urlsplit(url)
    return await asyncmy.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database_of(url),
        autocommit=False,
    )


async def _wait_for_lock_wait(url: str, call: asyncio.Future[Any]) -> None:
    """Poll (off the event loop, which runs the store) until a transaction waits for a lock.

    Fails at once, with its outcome, if the store's `call` ended instead of waiting.
    """
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        if call.done():
            raise AssertionError(f"the store's call ended without waiting: {call.exception()!r}")
        waiting = await asyncio.to_thread(
            mysql_execute,
            url,
            "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'",
        )
        if waiting[0][0]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the store's transaction never waited for the lock")


async def test_a_real_deadlock_is_retried_inside_the_store(mysql_flavour: Flavour) -> None:
    """InnoDB picks the store's delete_thread as the deadlock victim; the caller sees success."""
    url = str(mysql_flavour.dsn)
    owner = f"{uuid.uuid4().hex}:alice"
    store = await mysql_flavour.make(owner=lambda ctx: owner)
    other = await _raw_connection(url)
    try:
        await store.save_thread(ThreadMetadata(id="victim", created_at=T0), ALICE)
        for n in range(5):
            await store.add_thread_item("victim", user_message(f"m{n}", T0), ALICE)
        before = _innodb_deadlocks(url)
        async with other.cursor() as cur:
            # A heavier transaction (many rows written), so InnoDB rolls back the store's one.
            await cur.executemany(
                f"INSERT INTO {NAMES.items} (owner, thread_id, id, sort_key, payload) "
                "VALUES (%s, 'ballast', %s, 0, '{}')",
                [(owner, f"b{n}") for n in range(300)],
            )
            await cur.execute(
                f"SELECT id FROM {NAMES.items} WHERE owner = %s AND thread_id = 'victim' "
                "AND id = 'm4' FOR UPDATE",
                (owner,),
            )
            # The store deletes the thread's items in key order: m0..m3, then waits for m4.
            deleting = asyncio.ensure_future(store.delete_thread("victim", ALICE))
            await _wait_for_lock_wait(url, deleting)
            # Now wait for m0, which the store holds: a deadlock; the store's side is rolled back.
            await cur.execute(
                f"SELECT id FROM {NAMES.items} WHERE owner = %s AND thread_id = 'victim' "
                "AND id = 'm0' FOR UPDATE",
                (owner,),
            )
            await cur.execute(
                f"DELETE FROM {NAMES.items} WHERE owner = %s AND thread_id = 'ballast'", (owner,)
            )
        await other.commit()
        await asyncio.wait_for(deleting, 30)  # the retry succeeded once the lock was released
        assert _innodb_deadlocks(url) > before
        with pytest.raises(NotFoundError):
            await store.load_thread("victim", ALICE)
        assert (await store.load_thread_items("victim", None, 10, "asc", ALICE)).data == []
    finally:
        other.close()
        await store.close()


async def test_a_held_lock_times_out_as_database_timeout_error(mysql_flavour: Flavour) -> None:
    url = str(mysql_flavour.dsn)
    owner = f"{uuid.uuid4().hex}:alice"
    store = await mysql_flavour.make(
        owner=lambda ctx: owner,
        connect_args={"init_command": "SET SESSION innodb_lock_wait_timeout = 1"},
    )
    other = await _raw_connection(url)
    try:
        await store.save_thread(ThreadMetadata(id="held", created_at=T0), ALICE)
        async with other.cursor() as cur:
            await cur.execute(
                f"SELECT id FROM {NAMES.threads} WHERE owner = %s AND id = 'held' FOR UPDATE",
                (owner,),
            )
            started = asyncio.get_running_loop().time()
            # The outer 60 s only catches a hang (as a TimeoutError, not DatabaseTimeoutError).
            with pytest.raises(DatabaseTimeoutError, match="timed out") as caught:
                await asyncio.wait_for(
                    store.save_thread(ThreadMetadata(id="held", created_at=T0, title="x"), ALICE),
                    60,
                )
            elapsed = asyncio.get_running_loop().time() - started
        await other.rollback()
        assert caught.value.code == str(_mysql.LOCK_WAIT_TIMEOUT)
        # Tried twice (MAX_ATTEMPTS), each waiting out the 1 s lock wait timeout (a lower bound:
        # a busy machine only makes the waits longer).
        assert elapsed > 1.9, elapsed
        await store.save_thread(ThreadMetadata(id="held", created_at=T0, title="y"), ALICE)
        assert (await store.load_thread("held", ALICE)).title == "y"
    finally:
        other.close()
        await store.close()


async def test_lost_connection_raises_then_the_store_recovers(mysql_flavour: Flavour) -> None:
    url = str(mysql_flavour.dsn)
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 3306)
    await proxy.start()
    flavour = Flavour(mysql_flavour.name, _via(url, proxy.port))
    store: Any = await flavour.make(owner=lambda ctx: f"proxy-{id(proxy)}")
    thread = ThreadMetadata(id="t", created_at=T0)
    try:
        await store.save_thread(thread, ALICE)
        await asyncio.gather(*(store.load_thread("t", ALICE) for _ in range(3)))
        await proxy.stop()
        with pytest.raises(DatabaseUnavailableError, match="reconnects"):
            await store.load_thread("t", ALICE)
        with pytest.raises(DatabaseUnavailableError):
            await store.save_thread(thread, ALICE)
        await proxy.start()
        assert await store.load_thread("t", ALICE) == thread
    finally:
        await store.close()
        if proxy._server is not None:
            await proxy.stop()


def _kill_connections(url: str) -> int:
    """KILL every server connection using the URL's database (but the killer's own)."""
    conn = mysql_connect(url, None)
    killed = 0
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = %s AND ID <> CONNECTION_ID()",
                (database_of(url),),
            )
            for (connection_id,) in cur.fetchall():
                try:
                    cur.execute(f"KILL CONNECTION {int(connection_id)}")
                except pymysql.err.OperationalError as error:
                    if error.args[0] != 1094:  # unknown thread id: it ended meanwhile
                        raise
                else:
                    killed += 1
    finally:
        conn.close()
    return killed


@pytest.mark.parametrize("engine", ["from_url", "passed_in"])
async def test_killed_connections_during_concurrent_writes(
    mysql_flavour: Flavour, engine: str
) -> None:
    """The PostgreSQL kill test on MariaDB: KILL CONNECTION mid-write, 200 writers a round.

    Also checks that no killed connection keeps its pool slot: calls that queued for a
    connection would otherwise time out (DatabaseTimeoutError) once the pool ran dry. On an
    engine built by `from_url` (autocommit) and on one passed in (each call a transaction).
    """
    with fresh_database(str(mysql_flavour.dsn)) as url:
        flavour = Flavour(mysql_flavour.name, url)
        if engine == "from_url":
            store: Any = await flavour.make(pool_timeout=10)
        else:
            store = SQLAlchemyStore(
                create_async_engine(
                    f"{flavour.url}?charset=utf8mb4",
                    pool_size=4,
                    pool_timeout=10,
                    pool_pre_ping=True,
                )
            )
        try:
            await store.migrate()
            await check_killed_connections_during_concurrent_writes(
                store,
                kill=lambda: asyncio.to_thread(_kill_connections, url),
                assert_unlocked=lambda: asyncio.to_thread(
                    assert_no_locks, url, f"{NAMES.threads}, {NAMES.items}, {NAMES.attachments}"
                ),
            )
        finally:
            await store.close()
            await store.engine.dispose()


async def test_delete_thread_racing_item_writes_leaves_no_item(mysql_flavour: Flavour) -> None:
    """The PostgreSQL race test on MariaDB: the locking read in each item write makes
    delete_thread wait for writes in flight, and writes after it find no thread."""
    url = str(mysql_flavour.dsn)
    writers = 6
    store: Any = await mysql_flavour.make(pool_size=writers + 2)

    async def count_items(owner: str, thread_id: str) -> int:
        ((count,),) = await asyncio.to_thread(
            mysql_execute,
            url,
            f"SELECT COUNT(*) FROM {NAMES.items} WHERE owner = %s AND thread_id = %s",
            (owner, thread_id),
        )
        return int(count)

    try:
        await check_delete_thread_racing_item_writes(
            store,
            writers=writers,
            count_items=count_items,
            assert_unlocked=lambda: asyncio.to_thread(
                assert_no_locks, url, f"{NAMES.threads}, {NAMES.items}, {NAMES.attachments}"
            ),
        )
    finally:
        await store.close()


@pytest.mark.parametrize("driver", MYSQL_FLAVOURS)
async def test_connection_errors_are_translated(mariadb_url: str, driver: str) -> None:
    scheme = f"{driver}://"
    parts = urlsplit(mariadb_url)
    host = f"{parts.hostname or '127.0.0.1'}:{parts.port or 3306}"
    cases: list[tuple[str, type[DatabaseError]]] = [
        (f"{scheme}root@127.0.0.1:1/test", DatabaseUnavailableError),
        (f"{scheme}nobody_ckt:wrong@{host}/test", DatabaseConfigurationError),
        (f"{scheme}root@{host}/ckt_no_such_database", DatabaseConfigurationError),
    ]
    for url, kind in cases:
        async with SQLAlchemyStore.from_url(url) as store:
            with pytest.raises(kind) as caught:
                await store.load_thread("t", ALICE)
            assert type(caught.value) is kind
            assert caught.value.__cause__ is not None


async def test_tables_dropped_under_a_running_store_are_a_configuration_error(
    mariadb_url: str,
) -> None:
    with fresh_database(mariadb_url) as url:
        async with SQLAlchemyStore.from_url(url) as store:
            await store.migrate()
            await store.save_thread(ThreadMetadata(id="t", created_at=T0), ALICE)
            mysql_execute(url, f"DROP TABLE {NAMES.threads}")
            with pytest.raises(DatabaseConfigurationError, match="1146"):
                await store.load_thread("t", ALICE)


async def test_rows_written_through_one_driver_read_the_same_through_the_other(
    mysql_database: str,
) -> None:
    owner = f"{uuid.uuid4().hex}:alice"
    stores = [
        await Flavour(d, mysql_database).make(owner=lambda ctx: owner) for d in MYSQL_FLAVOURS
    ]
    try:
        for n, writer in enumerate(stores):
            t = ThreadMetadata(id=f"t{n}", created_at=T0 + timedelta(seconds=n), title=f"{n}\x00")
            await writer.save_thread(t, ALICE)
            item = user_message(f"m{n}", t.created_at, text=f"from {n} \x00 \U0001f600")
            await writer.add_thread_item(t.id, item, ALICE)
            attachment = FileAttachment(id=f"a{n}", name="f", mime_type="text/plain")
            await writer.save_attachment(attachment, ALICE)
            for reader in stores:
                assert await reader.load_thread(t.id, ALICE) == t
                assert (await reader.load_thread_items(t.id, None, 5, "desc", ALICE)).data == [item]
                assert await reader.load_attachment(attachment.id, ALICE) == attachment
        for reader in stores:
            page = await reader.load_threads(1, None, "desc", ALICE)
            assert [t.id for t in page.data] == ["t1"] and page.after == "t1"
    finally:
        for store in stores:
            await store.close()


async def test_plain_mysql_and_mariadb_urls_resolve_to_an_installed_driver(
    mysql_database: str,
) -> None:
    for scheme in ("mysql", "mariadb"):
        url = mysql_database.replace("mysql://", f"{scheme}://", 1)
        async with SQLAlchemyStore.from_url(url) as store:
            assert store.engine.url.drivername == f"{scheme}+asyncmy"
            assert store.engine.url.query["charset"] == "utf8mb4"
            await store.save_thread(ThreadMetadata(id=f"via-{scheme}", created_at=T0), ALICE)
            assert (await store.load_thread(f"via-{scheme}", ALICE)).id == f"via-{scheme}"
    with pytest.raises(ValueError, match="PostgreSQL option"):
        SQLAlchemyStore.from_url(mysql_database, schema="public")


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dialect_base, "is_installed", lambda module: module not in MYSQL_DRIVERS)
    for url in ("mysql://root@127.0.0.1/test", "mysql+aiomysql://root@127.0.0.1/test"):
        with pytest.raises(MissingDependencyError) as caught:
            SQLAlchemyStore.from_url(url)
        # One command, and the mysql extra named once (asyncmy and aiomysql share it).
        assert str(caught.value).endswith(install_command("mysql")), caught.value
        assert str(caught.value).count("[mysql]") == 1 and caught.value.extra == "mysql"
    # With only aiomysql installed, mysql:// uses it.
    monkeypatch.setattr(dialect_base, "is_installed", lambda module: module == "aiomysql")
    assert resolve_database_url("mysql://u@h/db") == "mysql+aiomysql://u@h/db"
    assert resolve_database_url("mariadb://u@h/db") == "mariadb+aiomysql://u@h/db"


MYSQL_DRIVERS = ("asyncmy", "aiomysql")


async def test_attachment_times_are_utc_whatever_the_session_time_zone(
    mysql_flavour: Flavour,
) -> None:
    owner = f"{uuid.uuid4().hex}:alice"
    store = await mysql_flavour.make(
        owner=lambda ctx: owner,
        connect_args={"init_command": "SET time_zone = '+09:00'"},
    )
    try:
        saved = datetime.now(timezone.utc)
        await store.save_attachment(
            FileAttachment(id="tz", name="f", mime_type="text/plain"), ALICE
        )
        found = [
            s
            for s in await store.list_unattached_attachments(saved + timedelta(minutes=1), 1000)
            if s.owner == owner
        ]
        assert len(found) == 1
        assert abs(found[0].saved_at - saved) < timedelta(seconds=5)
        assert await store.delete_orphan_attachment(owner, "tz") is True
        assert await store.delete_orphan_attachment(owner, "tz") is False
    finally:
        await store.close()


def test_cli_migrates_a_mysql_url(mariadb_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with fresh_database(mariadb_url) as url:
        assert main(["migrate", url, "--target", "1"]) == 0
        assert "from version 0 to 1" in capsys.readouterr().out
        assert main(["migrate", url]) == 0
        assert f"from version 1 to {SCHEMA_VERSION}" in capsys.readouterr().out
        assert main(["migrate", url]) == 0
        assert f"up to date (version {SCHEMA_VERSION})" in capsys.readouterr().out
        assert main(["migrate", url, "--schema", "x"]) == 2
        assert "--schema is a PostgreSQL option; on MySQL" in capsys.readouterr().err
        assert main(["migrate", url.replace("mysql://", "mysql+pymysql://")]) == 2
        assert "names a driver chatkit-kit cannot use" in capsys.readouterr().err


def test_cli_sql_script_applies_with_a_mysql_client(
    mariadb_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_database(mariadb_url) as url:
        # --sql never connects: the host does not even exist.
        assert main(["migrate", "mysql://nobody@db.invalid:1/x", "--sql"]) == 0
        script = capsys.readouterr().out
        assert "GET_LOCK" in script and "RELEASE_LOCK" in script and "VARBINARY" in script
        mysql_script(url, _script_statements(script))
        # Every step but recording the versions can run again (after an interruption).
        mysql_script(url, [s for s in _script_statements(script) if not s.startswith("INSERT")])

        async def check() -> None:
            async with SQLAlchemyStore.from_url(url) as store:
                assert await store.schema_version() == SCHEMA_VERSION
                await store.save_thread(ThreadMetadata(id="t", created_at=T0), ALICE)
                assert (await store.load_thread("t", ALICE)).id == "t"

        asyncio.run(check())
        assert database_of(with_database(url, "x")) == "x"


async def test_the_demo_runs_on_a_mysql_url(mariadb_url: str, tmp_path: Path) -> None:
    import httpx

    from chatkit_kit.demo.app import DemoConfig, build_app

    with fresh_database(mariadb_url) as url:
        app = build_app(DemoConfig(database_url=url, files_dir=str(tmp_path / "files")))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
        ):
            response = await http.post(
                "/chatkit",
                json={
                    "type": "threads.create",
                    "params": {
                        "input": {
                            "content": [{"type": "input_text", "text": "hi \U0001f600"}],
                            "attachments": [],
                            "inference_options": {},
                        }
                    },
                },
            )
            assert response.status_code == 200, response.text
            events = [
                json.loads(line[6:])
                for line in response.text.splitlines()
                if line.startswith("data: ")
            ]
            thread_id = events[0]["thread"]["id"]
            listed = await http.post(
                "/chatkit", json={"type": "items.list", "params": {"thread_id": thread_id}}
            )
            assert listed.status_code == 200, listed.text
            assert "hi \U0001f600" in listed.text
        rows = mysql_execute(url, f"SELECT CONVERT(id USING utf8mb4) FROM {NAMES.threads}")
        assert rows == [(thread_id,)]


def _wrapped(error: Exception) -> Exception:
    from sqlalchemy import exc

    return exc.OperationalError("SELECT 1", {}, error)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            _wrapped(asyncmy.errors.OperationalError(2013, "Lost connection")),
            DatabaseUnavailableError,
        ),
        (
            _wrapped(asyncmy.errors.OperationalError(1927, "Connection was killed")),
            DatabaseUnavailableError,
        ),
        (_wrapped(asyncmy.errors.OperationalError(1290, "--read-only")), DatabaseUnavailableError),
        (
            _wrapped(asyncmy.errors.OperationalError(1205, "Lock wait timeout")),
            DatabaseTimeoutError,
        ),
        (_wrapped(asyncmy.errors.OperationalError(1213, "Deadlock")), DeadlockError),
        (
            _wrapped(asyncmy.errors.OperationalError(1969, "max_statement_time")),
            DatabaseTimeoutError,
        ),
        (
            _wrapped(asyncmy.errors.OperationalError(1045, "Access denied")),
            DatabaseConfigurationError,
        ),
        (_wrapped(asyncmy.errors.ProgrammingError(1146, "no table")), DatabaseConfigurationError),
        (_wrapped(asyncmy.errors.IntegrityError(1062, "Duplicate")), DatabaseError),
        (_wrapped(pymysql.err.OperationalError(2003, "Can't connect")), DatabaseUnavailableError),
        # Raised unwrapped by SQLAlchemy when it sets AUTOCOMMIT on a dead pooled connection.
        (
            asyncmy.errors.OperationalError(2006, "MySQL server has gone away"),
            DatabaseUnavailableError,
        ),
        (pymysql.err.InterfaceError(0, ""), DatabaseUnavailableError),
    ],
    ids=lambda v: (
        str(getattr(getattr(v, "orig", v), "args", ("",))[0])
        if isinstance(v, Exception)
        else v.__name__
    ),
)
def test_mysql_translator(error: Exception, kind: type[DatabaseError]) -> None:
    store: SQLAlchemyStore[object] = SQLAlchemyStore.from_url("mysql+asyncmy://u@h/d")
    translated = store._translate(error)
    assert type(translated) is kind, translated
    assert store._translate(KeyError("ours")) is None


def test_cli_sql_script_runs_twice_with_a_mysql_client(
    mariadb_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed script is re-runnable as a whole, the version records included."""
    with fresh_database(mariadb_url) as url:
        assert main(["migrate", "mysql://nobody@db.invalid:1/x", "--sql"]) == 0
        statements = _script_statements(capsys.readouterr().out)
        assert any(s.startswith("INSERT") for s in statements)
        mysql_script(url, statements)
        mysql_script(url, statements)  # before: ERROR 1062 Duplicate entry '1'
        versions = mysql_execute(url, "SELECT version FROM chatkit_schema_version ORDER BY 1")
        assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))


async def test_a_migration_killed_midway_reports_that_it_may_have_applied(
    mysql_flavour: Flavour, mariadb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is killed after part of the DDL committed: the error is the lost
    connection (retryable, may have applied), not the failed RELEASE_LOCK in `finally` on the
    dead connection; a second migrate() completes."""
    real_apply = _schema.apply_migrations
    with fresh_database(mariadb_url) as url:
        executed = 0

        async def apply_then_kill(names: Any, execute: Any, fetch_value: Any, **kw: Any) -> Any:
            async def execute_and_kill(sql: str) -> None:
                nonlocal executed
                await execute(sql)
                executed += 1
                if executed == 3:
                    assert await asyncio.to_thread(_kill_connections, url) >= 1

            return await real_apply(names, execute_and_kill, fetch_value, **kw)

        monkeypatch.setattr(_schema, "apply_migrations", apply_then_kill)
        store = await Flavour(mysql_flavour.name, url).make()
        try:
            with pytest.raises(DatabaseError) as raised:
                await store.migrate()
            assert isinstance(raised.value, DatabaseUnavailableError), repr(raised.value)
            assert raised.value.retryable and raised.value.may_have_applied
            monkeypatch.setattr(_schema, "apply_migrations", real_apply)
            assert await store.migrate() == SCHEMA_VERSION
            assert await store.schema_version() == SCHEMA_VERSION
        finally:
            await store.close()
