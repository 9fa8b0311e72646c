"""MySQL and MariaDB (asyncmy, aiomysql): DDL, statements, the migration lock, error numbers.

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
There is no RETURNING: the store reads affected-row counts instead (SQLAlchemy's MySQL dialects
set CLIENT_FOUND_ROWS, so rewriting an unchanged payload counts too).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from ....errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    DeadlockError,
)
from ..._rules import Order
from .base import Execute, FetchValue, SQLDialect, TableNames, URLDriver

_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"
# The columns after the keys of threads and items: insertion order, sort key, payload.
_ORDERED_PAYLOAD = """seq BIGINT NOT NULL AUTO_INCREMENT,
    sort_key BIGINT NOT NULL,
    payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    PRIMARY KEY (seq)"""

MIGRATIONS: Mapping[int, tuple[str, ...]] = {
    1: (
        f"""CREATE TABLE IF NOT EXISTS {{threads}} (
    owner VARBINARY(1024) NOT NULL,
    id VARBINARY(512) NOT NULL,
    {_ORDERED_PAYLOAD},
    UNIQUE KEY {{threads_key_idx}} (owner, id),
    KEY {{threads_page_idx}} (owner, sort_key, seq)
) {_TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS {{items}} (
    owner VARBINARY(1024) NOT NULL,
    thread_id VARBINARY(512) NOT NULL,
    id VARBINARY(512) NOT NULL,
    {_ORDERED_PAYLOAD},
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
    4: (
        f"""CREATE TABLE IF NOT EXISTS {{data_keys}} (
    owner VARBINARY(1024) NOT NULL,
    version INT NOT NULL,
    kek_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    wrapped TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (owner, version)
) {_TABLE_OPTIONS}""",
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

DEADLOCK = 1213
LOCK_WAIT_TIMEOUT = 1205

_UNAVAILABLE = (
    1040,  # too many connections
    1053,  # server shutdown in progress
    1077,  # normal shutdown
    1152,  # aborted connection
    1290,  # --read-only: a replica after failover
    1836,  # read-only mode
    1927,  # MariaDB: connection killed
    4031,  # MySQL: disconnected by the server (idle timeout)
    *range(2000, 2100),  # client errors: can't connect, server has gone away, lost, ...
)
_CONFIGURATION = (
    1044,  # access denied to the database
    1045,  # access denied (user, password)
    1049,  # unknown database
    1054,  # unknown column: tables changed by hand
    1142,  # command denied (privilege)
    1143,  # column command denied
    1146,  # table does not exist: dropped after the schema check
    1227,  # access denied: needs a privilege
    1698,  # access denied (auth plugin)
)
# Lock wait timeout, MariaDB max_statement_time, MySQL max_execution_time: the statement was
# rolled back. A deadlock victim's transaction was rolled back.
_TIMEOUTS = (LOCK_WAIT_TIMEOUT, 1969, 3024)


class MySQLDialect(SQLDialect):
    name = "mysql"
    title = "MySQL/MariaDB"
    backends = ("mysql", "mariadb")
    # mariadb:// keeps SQLAlchemy's MariaDB dialect (the same store on the same tables).
    url_schemes: ClassVar[Mapping[str, str]] = {"mysql": "mysql", "mariadb": "mariadb"}
    # asyncmy is the mysql extra's driver; aiomysql works too (docs/stores.md compares them).
    drivers = (URLDriver("asyncmy", "asyncmy", "mysql"), URLDriver("aiomysql", "aiomysql", "mysql"))
    url_example = "mysql://user@host/db"
    returning = False
    upsert_style = "on_duplicate_key"
    quote_char = "`"
    tables_live_in = "the URL's database"
    no_schema_hint = (
        "on MySQL the tables live in the URL's database: use table_prefix to keep several "
        "stores apart in it"
    )
    transactional_ddl = False
    begin = "START TRANSACTION"
    autocommit_engine = True
    # Switching a connection's isolation level per call is a round trip each way, and when the
    # server has killed the connection, switching it back on check-in fails inside SQLAlchemy's
    # pool, which then loses the connection's slot (the pool runs dry). `from_url` makes MySQL
    # engines autocommit instead; on an engine passed in, every call runs in a transaction.
    switch_isolation_per_call = False

    errors: ClassVar[Mapping[str, type[DatabaseError]]] = {
        str(DEADLOCK): DeadlockError,
        **{str(code): DatabaseTimeoutError for code in _TIMEOUTS},
        **{str(code): DatabaseUnavailableError for code in _UNAVAILABLE},
        **{str(code): DatabaseConfigurationError for code in _CONFIGURATION},
    }
    # Each attempt waits up to innodb_lock_wait_timeout, so fewer of those.
    retries: ClassVar[Mapping[str, int]] = {str(DEADLOCK): 5, str(LOCK_WAIT_TIMEOUT): 2}

    migrations = MIGRATIONS
    create_versions = CREATE_VERSIONS
    version_table_exists = VERSION_TABLE_EXISTS
    script_note = "-- Run it in the target database (USE it first); every step can be repeated.\n"

    # Statements. Keys are VARBINARY: ids selected for cursors are converted back to text.

    upsert_thread = (
        "INSERT INTO {threads} (owner, id, sort_key, payload) "
        "VALUES (:owner, :id, :sort_key, :payload) "
        "ON DUPLICATE KEY UPDATE payload = :payload"
    )
    # An item write: one statement that inserts only if the thread has a row. The thread row is
    # read with a shared lock (a locking read sees the latest committed version, in any
    # isolation level) held until the statement commits: a concurrent delete_thread waits for
    # the item to be committed (its item delete then sees it), and a write that waited for a
    # delete finds no row and writes nothing. The affected-row count says which happened.
    upsert_item = (
        "INSERT INTO {items} (owner, thread_id, id, sort_key, payload) "
        "SELECT :owner, :thread_id, :id, :sort_key, :payload FROM {threads} "
        "WHERE owner = :owner AND id = :thread_id LOCK IN SHARE MODE "
        "ON DUPLICATE KEY UPDATE payload = :payload"
    )
    # delete_thread as one statement (one round trip, atomic alone): the thread row, locked
    # first, then its items. Joining from the thread row finds every item: on MySQL no item row
    # exists without its thread row (item writes check it atomically, and MySQL support began
    # with that rule). Waiting for the thread row's lock lets item writes in flight commit
    # first; the items are then read as locking reads (latest committed versions), so none of
    # theirs survives.
    delete_thread = (
        "DELETE t, i FROM {threads} t LEFT JOIN {items} i "
        "ON i.owner = t.owner AND i.thread_id = t.id "
        "WHERE t.owner = :owner AND t.id = :thread_id",
    )
    upsert_attachment = (
        "INSERT INTO {attachments} (owner, id, thread_id, payload, created_at, updated_at) "
        "VALUES (:owner, :id, :thread_id, :payload, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) "
        "ON DUPLICATE KEY UPDATE thread_id = :thread_id, payload = :payload, "
        "updated_at = UTC_TIMESTAMP(6)"
    )
    delete_orphan_attachment = (
        "DELETE FROM {attachments} WHERE owner = :owner AND id = :id AND thread_id IS NULL"
    )

    # Pages: the cursor row joins as a one-row (const) table, so the range on the page index is
    # known before execution; `(a, b) > (x, y)` is spelled out, which MySQL's range optimizer
    # needs. FORCE INDEX: without it MariaDB prefers `ref` on (owner, thread_id) for the ORDER BY
    # and filters the cursor condition row by row, reading everything before the cursor
    # (EXPLAIN-checked in the tests).
    _threads_page = (
        "SELECT CONVERT(t.id USING utf8mb4), t.payload FROM {threads} t "
        "FORCE INDEX ({threads_page_idx}){join} "
        "WHERE t.owner = :owner{cursor} "
        "ORDER BY t.sort_key {direction}, t.seq {direction} LIMIT :limit"
    )
    _threads_cursor = " JOIN {threads} c ON c.owner = :owner AND c.id = :after"
    _items_page = (
        "SELECT CONVERT(t.id USING utf8mb4), t.payload FROM {items} t "
        "FORCE INDEX ({items_page_idx}){join} "
        "WHERE t.owner = :owner AND t.thread_id = :thread_id{cursor} "
        "ORDER BY t.sort_key {direction}, t.seq {direction} LIMIT :limit"
    )
    _items_cursor = (
        " JOIN {items} c ON c.owner = :owner AND c.thread_id = :thread_id AND c.id = :after"
    )
    _cursor = " AND (t.sort_key {op} c.sort_key OR (t.sort_key = c.sort_key AND t.seq {op} c.seq))"

    def threads_page(self, order: Order, with_cursor: bool) -> str:
        return self._page(self._threads_page, self._threads_cursor, order, with_cursor)

    def items_page(self, order: Order, with_cursor: bool) -> str:
        return self._page(self._items_page, self._items_cursor, order, with_cursor)

    def _page(self, template: str, join: str, order: Order, with_cursor: bool) -> str:
        op = ">" if order == "asc" else "<"
        return (
            template.replace("{join}", join if with_cursor else "")
            .replace("{cursor}", self._cursor.replace("{op}", op) if with_cursor else "")
            .replace("{direction}", "ASC" if order == "asc" else "DESC")
        )

    def text_column(self, column: str) -> str:
        return f"CONVERT({column} USING utf8mb4)"

    # Retention: no LIMIT in IN subqueries and (MySQL) no RETURNING: DELETE ... LIMIT, whose
    # affected-row count the store reads.
    delete_owner_items = "DELETE FROM {items} WHERE owner = :owner LIMIT :limit"
    delete_owner_threads = "DELETE FROM {threads} WHERE owner = :owner LIMIT :limit"
    delete_stale_items = (
        "DELETE FROM {items} WHERE owner = :owner AND thread_id = :thread_id "
        "AND sort_key < :cutoff LIMIT :limit"
    )
    delete_empty_thread = SQLDialect.delete_empty_thread.removesuffix(" RETURNING 1")

    # Data keys and raw payloads (encryption): no UPDATE ... RETURNING, no ON CONFLICT.
    add_data_key = (
        "INSERT INTO {data_keys} (owner, version, kek_id, wrapped) "
        "VALUES (:owner, :version, :kek_id, :wrapped) ON DUPLICATE KEY UPDATE version = version"
    )
    replace_thread_payload = SQLDialect.replace_thread_payload.removesuffix(" RETURNING 1")
    replace_item_payload = SQLDialect.replace_item_payload.removesuffix(" RETURNING 1")
    replace_attachment_payload = SQLDialect.replace_attachment_payload.removesuffix(" RETURNING 1")

    def timestamp_parameter(self, moment: datetime) -> Any:
        return moment.replace(tzinfo=None)  # DATETIME(6) in UTC, no time zone

    # Errors: the driver's error number (asyncmy, aiomysql/PyMySQL) is the first argument.

    def error_code(self, error: BaseException) -> str | None:
        args = getattr(error, "args", ())
        if args and isinstance(args[0], int) and not isinstance(args[0], bool) and args[0]:
            return str(args[0])
        return None

    def unclassified(self, error: BaseException, code: str | None) -> type[DatabaseError]:
        name = type(error).__name__
        if name == "InterfaceError" or (code is None and name == "OperationalError"):
            return DatabaseUnavailableError  # e.g. PyMySQL's (0, "") on a closed connection
        return DatabaseError

    # URLs and engines

    def configure_url(self, url: Any) -> Any:
        """utf8mb4 unless the URL sets a charset (4-byte text needs it)."""
        if "charset" in url.query:
            return url
        return url.update_query_dict({"charset": "utf8mb4"})

    def engine_arguments(self, driver: str, kwargs: dict[str, Any], *, pgbouncer: bool) -> None:
        # MySQL closes idle connections (wait_timeout) and failovers drop them: check each
        # pooled connection on checkout, so a dead one is replaced instead of failing a call.
        kwargs.setdefault("pool_pre_ping", True)
        # Autocommit connections, and no ROLLBACK round trip when a call ends: a statement in
        # autocommit mode has nothing to roll back.
        kwargs.setdefault("isolation_level", "AUTOCOMMIT")
        if kwargs["isolation_level"] == "AUTOCOMMIT":
            kwargs.setdefault("skip_autocommit_rollback", True)

    def statement_timeout_arguments(
        self, driver: str, kwargs: dict[str, Any], seconds: float | None
    ) -> None:
        # A new connection during a network black hole waits for the driver's connect timeout
        # (aiomysql: none), which the statement timeout bounds too.
        if seconds is None:
            return
        self.connect_arg_defaults(kwargs, connect_timeout=seconds)

    # Migrations: DDL commits implicitly, so no transaction but a named lock held by the
    # connection around the whole migration (the server releases it if the connection drops);
    # every step can run again after an interruption.

    def lock_name(self, names: TableNames) -> str:
        """A SQL expression naming the migration lock of this database and table prefix.

        GET_LOCK names are server-wide and at most 64 characters: hash the database and prefix.
        """
        prefix = names.prefix  # letters, digits and underscores only (validated)
        return f"CONCAT('chatkit-kit:', SHA1(CONCAT(DATABASE(), ':', '{prefix}')))"

    def acquire_lock_sql(self, names: TableNames) -> str:
        return f"SELECT GET_LOCK({self.lock_name(names)}, {LOCK_TIMEOUT_SECONDS})"

    # Recording a version again (a printed script run a second time) changes nothing.
    record_version = SQLDialect.record_version + " ON DUPLICATE KEY UPDATE version = version"

    def release_lock_sql(self, names: TableNames) -> str:
        return f"SELECT RELEASE_LOCK({self.lock_name(names)})"

    async def lock_migrations(self, names: TableNames, execute: Execute, fetch: FetchValue) -> None:
        locked = await fetch(self.acquire_lock_sql(names))
        if locked != 1:
            raise DatabaseTimeoutError(
                f"could not take the migration lock of the chatkit-kit tables "
                f"{names.table('*')} within {LOCK_TIMEOUT_SECONDS} s (GET_LOCK returned "
                f"{locked!r}): another migration is still running"
            )

    async def unlock_migrations(
        self, names: TableNames, execute: Execute, fetch: FetchValue
    ) -> None:
        await fetch(self.release_lock_sql(names))

    async def prepare_migrations(
        self, names: TableNames, execute: Execute, fetch: FetchValue
    ) -> None:
        # CREATE TABLE IF NOT EXISTS of an existing table leaves a warning.
        if not await fetch(names.format(self.version_table_exists)):
            await super().prepare_migrations(names, execute, fetch)

    def script_begin(self, names: TableNames) -> list[str]:
        # The same named lock as migrate().
        return [self.acquire_lock_sql(names)]

    def script_end(self, names: TableNames) -> list[str]:
        return [self.release_lock_sql(names)]
