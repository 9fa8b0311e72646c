"""What is particular to MySQL and MariaDB: DDL, statements, the migration lock, retries, URLs.

The shared store logic (`_sqlstore`) and schema versioning (`_schema`) stay dialect-neutral;
this module supplies the MySQL text they run and `SQLAlchemyStore` the driver glue.

Column types, and why:

- Keys (`owner`, `id`, `thread_id`) are `VARBINARY`: byte-exact comparison, so "Thr", "thr" and
  "thr " are three keys (MySQL's default collations fold case and every `_bin` collation but
  the NO PAD ones ignores trailing spaces). Sized in bytes to the store limits (owner 1024,
  ids 512 UTF-8 bytes), the widest key, the items primary key, is 2048 bytes plus length
  bytes: under InnoDB's 3072-byte index limit (DYNAMIC rows).
- Payloads are `LONGTEXT` in utf8mb4 holding the codec's JSON text as written, never MySQL's
  binary `JSON` type (which reorders keys and normalizes numbers).
- `seq` is an AUTO_INCREMENT primary key: the insertion order that breaks `created_at` ties,
  kept by `ON DUPLICATE KEY UPDATE`. Secondary indexes carry it, so page indexes stay narrow.
- Attachment times are `DATETIME(6)` written as `UTC_TIMESTAMP(6)` by our statements, so the
  session time zone never matters.

DDL commits implicitly on MySQL, so a migration cannot be one transaction: every migration is
`CREATE TABLE IF NOT EXISTS` statements (safe to repeat after a crash), run under a named
lock (`GET_LOCK`) that serializes concurrent migrators of one database and table prefix.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, TypeVar

from ..errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
)
from ._rules import Order

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from ._schema import Names

_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"

MIGRATIONS: Mapping[int, tuple[str, ...]] = {
    1: (
        f"""CREATE TABLE IF NOT EXISTS {{threads}} (
    owner VARBINARY(1024) NOT NULL,
    id VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL AUTO_INCREMENT,
    sort_key BIGINT NOT NULL,
    payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY {{threads_key_idx}} (owner, id),
    KEY {{threads_page_idx}} (owner, sort_key, seq)
) {_TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS {{items}} (
    owner VARBINARY(1024) NOT NULL,
    thread_id VARBINARY(512) NOT NULL,
    id VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL AUTO_INCREMENT,
    sort_key BIGINT NOT NULL,
    payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY {{items_key_idx}} (owner, thread_id, id),
    KEY {{items_page_idx}} (owner, thread_id, sort_key, seq)
) {_TABLE_OPTIONS}""",
    ),
    2: (
        f"""CREATE TABLE IF NOT EXISTS {{attachments}} (
    owner VARBINARY(1024) NOT NULL,
    id VARBINARY(512) NOT NULL,
    thread_id VARBINARY(512) NULL,
    payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (owner, id)
) {_TABLE_OPTIONS}""",
    ),
    # No partial indexes on MySQL; InnoDB appends the primary key (owner, id) to both, so they
    # also serve the ORDER BY of the thread listing and of the orphan sweep. MySQL has no
    # ADD INDEX IF NOT EXISTS: the ALTER runs only when the index is missing, so a migration
    # interrupted before its version was recorded can run again.
    3: (
        "SET @chatkit_kit_ddl = IF((SELECT COUNT(*) FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND table_name = {attachments_literal} "
        "AND index_name = {attachments_thread_idx_literal}) = 0, "
        "'ALTER TABLE {attachments} ADD INDEX {attachments_thread_idx} "
        "(owner, thread_id, created_at), ADD INDEX {attachments_orphan_idx} "
        "(thread_id, created_at)', 'DO 0')",
        "PREPARE chatkit_kit_ddl FROM @chatkit_kit_ddl",
        "EXECUTE chatkit_kit_ddl",
        "DEALLOCATE PREPARE chatkit_kit_ddl",
    ),
}
"""Each schema version's MySQL statements (the same versions as `_schema.MIGRATIONS`)."""

CREATE_VERSIONS = f"""CREATE TABLE IF NOT EXISTS {{versions}} (
    version INT NOT NULL PRIMARY KEY,
    description VARCHAR(255) NOT NULL,
    applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) {_TABLE_OPTIONS}"""

VERSION_TABLE_EXISTS = (
    "SELECT 1 FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name = {versions_literal}"
)

LOCK_TIMEOUT_SECONDS = 120
"""How long `migrate()` waits for another process's migration of the same tables."""


def lock_name(names: Names) -> str:
    """A SQL expression naming the migration lock of this database and table prefix.

    GET_LOCK names are server-wide and at most 64 characters: hash the database and prefix.
    """
    prefix = names.prefix  # letters, digits and underscores only (validated)
    return f"CONCAT('chatkit-kit:', SHA1(CONCAT(DATABASE(), ':', '{prefix}')))"


def acquire_lock_sql(names: Names) -> str:
    return f"SELECT GET_LOCK({lock_name(names)}, {LOCK_TIMEOUT_SECONDS})"


def release_lock_sql(names: Names) -> str:
    return f"SELECT RELEASE_LOCK({lock_name(names)})"


def lock_timeout_error(names: Names, result: object) -> DatabaseTimeoutError:
    return DatabaseTimeoutError(
        f"could not take the migration lock of the chatkit-kit tables {names.table('*')} "
        f"within {LOCK_TIMEOUT_SECONDS} s (GET_LOCK returned {result!r}): another migration "
        "is still running"
    )


# Statements. Keys are VARBINARY: ids selected for cursors are converted back to text.

_UPSERT_THREAD = (
    "INSERT INTO {threads} (owner, id, sort_key, payload) "
    "VALUES (:owner, :id, :sort_key, :payload) "
    "ON DUPLICATE KEY UPDATE payload = :payload"
)
# An item write: one statement that inserts only if the thread has a row. The thread row is
# read with a shared lock (a locking read sees the latest committed version, in any isolation
# level) held until the statement commits: a concurrent delete_thread waits for the item to be
# committed (its item delete then sees it), and a write that waited for a delete finds no row
# and writes nothing. The affected-row count says which happened (SQLAlchemy's MySQL dialects
# set CLIENT_FOUND_ROWS, so rewriting an unchanged payload counts too).
UPSERT_ITEM_IN_THREAD = (
    "INSERT INTO {items} (owner, thread_id, id, sort_key, payload) "
    "SELECT :owner, :thread_id, :id, :sort_key, :payload FROM {threads} "
    "WHERE owner = :owner AND id = :thread_id LOCK IN SHARE MODE "
    "ON DUPLICATE KEY UPDATE payload = :payload"
)
# delete_thread as one statement (one round trip, atomic alone): the thread row, locked first,
# then its items. Joining from the thread row finds every item: on MySQL no item row exists
# without its thread row (item writes check it atomically, and MySQL support began with that
# rule). Waiting for the thread row's lock lets item writes in flight commit first; the items
# are then read as locking reads (latest committed versions), so none of theirs survives.
DELETE_THREAD = (
    "DELETE t, i FROM {threads} t LEFT JOIN {items} i "
    "ON i.owner = t.owner AND i.thread_id = t.id "
    "WHERE t.owner = :owner AND t.id = :thread_id"
)
_UPSERT_ATTACHMENT = (
    "INSERT INTO {attachments} (owner, id, thread_id, payload, created_at, updated_at) "
    "VALUES (:owner, :id, :thread_id, :payload, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) "
    "ON DUPLICATE KEY UPDATE thread_id = :thread_id, payload = :payload, "
    "updated_at = UTC_TIMESTAMP(6)"
)
_UNATTACHED_ATTACHMENTS = (
    "SELECT CONVERT(owner USING utf8mb4), payload, created_at FROM {attachments} "
    "WHERE thread_id IS NULL AND created_at < :before ORDER BY created_at, owner, id LIMIT :limit"
)
# Without RETURNING (MySQL has none): the store reads the affected row count.
_DELETE_ORPHAN_ATTACHMENT = (
    "DELETE FROM {attachments} WHERE owner = :owner AND id = :id AND thread_id IS NULL"
)

# Pages: the cursor row joins as a one-row (const) table, so the range on the page index is
# known before execution; `(a, b) > (x, y)` is spelled out, which MySQL's range optimizer needs.
# FORCE INDEX: without it MariaDB prefers `ref` on (owner, thread_id) for the ORDER BY and
# filters the cursor condition row by row, reading everything before the cursor (EXPLAIN-checked
# in the tests).
_THREADS_PAGE = (
    "SELECT CONVERT(t.id USING utf8mb4), t.payload FROM {threads} t "
    "FORCE INDEX ({threads_page_idx}){join} "
    "WHERE t.owner = :owner{cursor} "
    "ORDER BY t.sort_key {direction}, t.seq {direction} LIMIT :limit"
)
_THREADS_JOIN = " JOIN {threads} c ON c.owner = :owner AND c.id = :after"
_ITEMS_PAGE = (
    "SELECT CONVERT(t.id USING utf8mb4), t.payload FROM {items} t "
    "FORCE INDEX ({items_page_idx}){join} "
    "WHERE t.owner = :owner AND t.thread_id = :thread_id{cursor} "
    "ORDER BY t.sort_key {direction}, t.seq {direction} LIMIT :limit"
)
_ITEMS_JOIN = " JOIN {items} c ON c.owner = :owner AND c.thread_id = :thread_id AND c.id = :after"
_CURSOR = " AND (t.sort_key {op} c.sort_key OR (t.sort_key = c.sort_key AND t.seq {op} c.seq))"


def _page(template: str, join: str, order: Order, with_cursor: bool) -> str:
    op = ">" if order == "asc" else "<"
    return (
        template.replace("{join}", join if with_cursor else "")
        .replace("{cursor}", _CURSOR.replace("{op}", op) if with_cursor else "")
        .replace("{direction}", "ASC" if order == "asc" else "DESC")
    )


def threads_page(order: Order, with_cursor: bool) -> str:
    return _page(_THREADS_PAGE, _THREADS_JOIN, order, with_cursor)


def items_page(order: Order, with_cursor: bool) -> str:
    return _page(_ITEMS_PAGE, _ITEMS_JOIN, order, with_cursor)


@cache
def statement_overrides() -> dict[str, str]:
    """The MySQL text of the statements whose shared text MySQL does not accept."""
    from . import _sql

    return {
        _sql.UPSERT_THREAD: _UPSERT_THREAD,
        _sql.UPSERT_ATTACHMENT: _UPSERT_ATTACHMENT,
        _sql.UNATTACHED_ATTACHMENTS: _UNATTACHED_ATTACHMENTS,
        _sql.DELETE_ORPHAN_ATTACHMENT: _DELETE_ORPHAN_ATTACHMENT,
    }


# Retrying InnoDB deadlocks and lock wait timeouts.

DEADLOCK = 1213
LOCK_WAIT_TIMEOUT = 1205
MAX_ATTEMPTS = {DEADLOCK: 5, LOCK_WAIT_TIMEOUT: 2}
"""Attempts of one store call that InnoDB rolled back as a deadlock victim, or whose lock wait
timed out (each attempt waits up to innodb_lock_wait_timeout, so fewer of those)."""

T = TypeVar("T")


def error_code(error: BaseException | None) -> int | None:
    """The MySQL error number of a driver error (asyncmy, aiomysql/PyMySQL), if any.

    Follows a translated error's `__cause__` and SQLAlchemy's `.orig` to the driver's error.
    """
    seen = 0
    while error is not None and seen < 4:
        args = getattr(error, "args", ())
        if not isinstance(error, DatabaseError) and args and isinstance(args[0], int):
            return int(args[0])
        error = getattr(error, "orig", None) or error.__cause__
        seen += 1
    return None


_TIMEOUTS = frozenset({LOCK_WAIT_TIMEOUT, DEADLOCK, 1969, 3024})
"""Lock wait timeout, deadlock (after the store's retries), MariaDB max_statement_time, MySQL
max_execution_time: the statement was rolled back."""
_UNAVAILABLE = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1077,  # normal shutdown
        1152,  # aborted connection
        1290,  # --read-only: a replica after failover
        1836,  # read-only mode
        1927,  # MariaDB: connection killed
        4031,  # MySQL: disconnected by the server (idle timeout)
        *range(2000, 2100),  # client errors: can't connect, server has gone away, lost, ...
    }
)
_CONFIGURATION = frozenset(
    {
        1044,  # access denied to the database
        1045,  # access denied (user, password)
        1049,  # unknown database
        1054,  # unknown column: tables changed by hand
        1142,  # command denied (privilege)
        1143,  # column command denied
        1146,  # table does not exist: dropped after the schema check
        1227,  # access denied: needs a privilege
        1698,  # access denied (auth plugin)
    }
)


_DRIVER_MODULES = frozenset({"asyncmy", "aiomysql", "pymysql"})


def is_driver_error(error: BaseException) -> bool:
    """Whether `error` comes from a MySQL driver (not wrapped by SQLAlchemy)."""
    return type(error).__module__.split(".", 1)[0] in _DRIVER_MODULES


def kind_of_error(error: BaseException) -> type[DatabaseError]:
    """The `chatkit_kit.errors` class for a MySQL driver error, by its error number."""
    code = error_code(error)
    if code in _TIMEOUTS:
        return DatabaseTimeoutError
    if code in _UNAVAILABLE:
        return DatabaseUnavailableError
    if code in _CONFIGURATION:
        return DatabaseConfigurationError
    name = type(error).__name__
    if name == "InterfaceError" or (not code and name == "OperationalError"):
        return DatabaseUnavailableError  # e.g. PyMySQL's (0, "") on a closed connection
    return DatabaseError


async def retrying(operation: Callable[[], Awaitable[T]]) -> T:
    """Run `operation`, again (MAX_ATTEMPTS) when InnoDB rolled it back as a deadlock victim.

    Only whole store operations are passed in: each is one autocommit statement or one
    transaction, which InnoDB rolled back completely when it picked it as the deadlock victim
    (a lock wait timeout rolls back the statement, and the store's transaction rolls back the
    rest), so running it again cannot apply anything twice.
    """
    attempt = 1
    while True:
        try:
            return await operation()
        except DatabaseTimeoutError as error:
            if attempt >= MAX_ATTEMPTS.get(error_code(error) or 0, 1):
                raise
        await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
        attempt += 1


# URLs (drivers are resolved by `_urls`, like every backend's)

SCHEMES = ("mysql", "mariadb")
"""SQLAlchemy backend names of MySQL URLs."""


def configure_url(url: URL) -> URL:
    """A resolved MySQL URL with utf8mb4 unless it sets a charset (4-byte text needs it)."""
    if "charset" in url.query:
        return url
    return url.update_query_dict({"charset": "utf8mb4"})
