"""`SQLDialect`: everything the SQL stores do differently on one database, in one object.

A dialect owns its DDL per schema version, its statements, how migrations are serialized (the
migration lock), how a transaction is opened, its capability flags, its error classification
(one table, the most specific entry wins) and the engine arguments `SQLAlchemyStore.from_url`
passes. The store logic (`stores._sqlstore`) and the drivers (`stores.sqlalchemy`,
`stores.asyncpg`) read these attributes and never ask which database they run on.

The statement templates below are the shared text (PostgreSQL and SQLite accept it as is); a
dialect overrides the ones its database spells differently. Templates use `:name` parameters and
`{threads}`-style table names, filled in by `stores._schema.TableNames.format`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from ...._optional import is_installed
from ....errors import DatabaseConfigurationError, DatabaseError, MissingDependencyError
from ..._dberrors import database_error
from ..._rules import Order

Execute = Callable[[str], Awaitable[None]]
"""Runs one statement without parameters (migrations' DDL)."""
FetchValue = Callable[[str], Awaitable[Any]]
"""Runs one statement without parameters; returns the first column of its first row, or None."""

UpsertStyle = Literal["on_conflict", "on_duplicate_key"]

_CONFIGURATION_MESSAGE = re.compile(
    r'database "[^"]*" does not exist|role "[^"]*" does not exist|'
    r"password authentication failed|no pg_hba\.conf entry|permission denied|"
    r"unable to open database file|readonly database|no such table",
    re.IGNORECASE,
)
CONFIGURATION_MESSAGES: tuple[tuple[re.Pattern[str], type[DatabaseError]], ...] = (
    (_CONFIGURATION_MESSAGE, DatabaseConfigurationError),
)
"""Configuration errors recognised by their message, for drivers that give no error code
(psycopg while connecting, sqlite3)."""


class TableNames(Protocol):
    """The table names of one store configuration (`stores._schema.Names`)."""

    @property
    def schema(self) -> str | None: ...

    @property
    def prefix(self) -> str: ...

    @property
    def lock_key(self) -> int: ...

    def table(self, name: str) -> str: ...

    def format(self, template: str, **literals: str) -> str: ...


def sql_literal(text: str) -> str:
    """Quote `text` as a SQL string literal (for our own constants, never for user data)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class URLDriver:
    """An async SQLAlchemy driver a dialect's URLs may name (`postgresql+asyncpg://`)."""

    name: str
    """The driver name after "+" in a URL scheme."""
    module: str
    """What must be importable to use it."""
    extra: str
    """The chatkit-kit extra that installs it (named by MissingDependencyError)."""


class SQLDialect:
    """One database's SQL, schema, locking, capabilities, error table and URLs.

    Subclass it, set `name`, `backends`, `migrations`, `create_versions` and
    `version_table_exists` (and `url_schemes` and `drivers` for `from_url` and the CLI),
    override what the database spells differently, and register an instance with
    `chatkit_kit.stores.sql.dialects.register_dialect`.
    """

    name: ClassVar[str]
    """The dialect's name, as `TableNames.create` and error messages use it."""
    title: ClassVar[str]
    """The database's name for people ("PostgreSQL")."""
    backends: ClassVar[tuple[str, ...]]
    """SQLAlchemy backend names (engine.dialect.name, URL scheme) this dialect serves."""

    # Capabilities
    returning: ClassVar[bool] = True
    """Whether DELETE/INSERT ... RETURNING exists; without it the store reads row counts."""
    upsert_style: ClassVar[UpsertStyle] = "on_conflict"
    """How an insert-or-update is spelled (`ON CONFLICT` or `ON DUPLICATE KEY UPDATE`)."""
    schemas: ClassVar[bool] = False
    """Whether tables live in a named schema (the stores' `schema=` option)."""
    default_schema: ClassVar[str | None] = None
    tables_live_in: ClassVar[str] = "one database"
    """Where the tables live when there are no schemas (for error messages)."""
    native_drivers: ClassVar[tuple[str, ...]] = ()
    """Drivers a chatkit-kit store of its own runs directly (PostgreSQL: `AsyncpgStore`)."""
    quote_char: ClassVar[str] = '"'

    # URLs (`SQLAlchemyStore.from_url`, the chatkit-kit commands)
    url_schemes: ClassVar[Mapping[str, str]] = {}
    """The URL schemes (lower case, without `+driver`) this dialect serves, each with the
    SQLAlchemy backend name its URLs connect with (`{"postgres": "postgresql"}`)."""
    drivers: ClassVar[tuple[URLDriver, ...]] = ()
    """The async drivers its URLs may name, in order of preference when a URL names none."""
    url_example: ClassVar[str] = ""
    """An example URL for error messages."""

    # Transactions and migrations
    transactional_ddl: ClassVar[bool] = True
    """Whether DDL runs inside a transaction; without it migrations hold `migration_lock`."""
    begin: ClassVar[str] = "BEGIN"
    """The statement that opens a transaction by hand (migration scripts, raw connections)."""
    autocommit_engine: ClassVar[bool] = False
    """Whether `from_url` creates its engine in autocommit mode (no per-call isolation switch)."""
    switch_isolation_per_call: ClassVar[bool] = True
    """Whether a call on an engine passed in switches its connection to AUTOCOMMIT for single
    statements (else every call on such an engine runs in a transaction)."""
    direct_driver: ClassVar[bool] = False
    """Whether the SQLAlchemy driver runs statements on the DBAPI driver connection directly."""
    direct_statement_drivers: ClassVar[frozenset[str]] = frozenset()
    """SQLAlchemy drivers (`engine.dialect.driver`) on whose pooled connection
    `SQLAlchemyStore` runs single-statement calls itself, bypassing SQLAlchemy's execution
    layer (it knows asyncpg and psycopg)."""
    before_migrate: ClassVar[tuple[str, ...]] = ()
    """Statements `migrate()` runs first, outside its transaction."""
    client_statement_timeout: ClassVar[bool] = True
    """Whether the store bounds every statement's wait for an answer on the client (its
    `statement_timeout`; `stores._deadline`): needed for network databases, where a frozen
    connection never lets a server-side timeout fire. Without it the dialect bounds waits in
    `statement_timeout_arguments` (SQLite: the busy timeout)."""

    # Errors
    errors: ClassVar[Mapping[str, type[DatabaseError]]] = {}
    """Error codes to error classes. A key is an exact code or a prefix ending in `*` (a SQLSTATE
    class such as `08*`); the exact code wins over prefixes, a longer prefix over a shorter one."""
    messages: ClassVar[tuple[tuple[re.Pattern[str], type[DatabaseError]], ...]] = ()
    """Errors without a code, recognised by their message (first match wins)."""
    retries: ClassVar[Mapping[str, int]] = {}
    """Attempts of one whole store call per error code (the database rolled the call back and
    running it again cannot apply anything twice); codes not listed are not retried."""

    # Schema
    migrations: ClassVar[Mapping[int, tuple[str, ...]]]
    """Each schema version's statements (the versions of `stores._schema.MIGRATIONS`)."""
    create_versions: ClassVar[str]
    """CREATE TABLE IF NOT EXISTS of the version table."""
    version_table_exists: ClassVar[str]
    """A query returning one row when the version table exists, none otherwise."""

    # Naming and configuration

    def quote(self, identifier: str) -> str:
        return f"{self.quote_char}{identifier}{self.quote_char}"

    def check_schema(self, schema: str | None) -> str | None:
        """The schema the tables live in for the store option `schema` (ValueError if refused)."""
        if schema is not None:
            raise ValueError(f"schema={schema!r} is a PostgreSQL option; {self.no_schema_hint}")
        return None

    no_schema_hint: ClassVar[str] = "use table_prefix to keep several stores apart"

    def engine_arguments(self, driver: str, kwargs: dict[str, Any], *, pgbouncer: bool) -> None:
        """Fill `create_async_engine` defaults for this database into `kwargs` (in place)."""

    def statement_timeout_arguments(
        self, driver: str, kwargs: dict[str, Any], seconds: float | None
    ) -> None:
        """Fill the `create_async_engine` arguments that make the database itself bound a
        statement to `seconds` (None: no bound) into `kwargs` (in place; what the caller set
        wins). Nothing by default: the client-side bound serves every driver, PgBouncer too."""

    @staticmethod
    def connect_arg_defaults(kwargs: dict[str, Any], **defaults: Any) -> None:
        """Set `defaults` in `kwargs["connect_args"]` (in place) where the caller set none."""
        connect_args = dict(kwargs.get("connect_args") or {})
        for name, value in defaults.items():
            connect_args.setdefault(name, value)
        kwargs["connect_args"] = connect_args

    def configure_url(self, url: Any) -> Any:
        """The SQLAlchemy URL `from_url` connects with (e.g. with a default charset)."""
        return url

    def configure_engine(self, engine: Any, kwargs: Mapping[str, Any]) -> None:
        """Hook up connection events on a new engine `from_url` created with `kwargs`."""

    def timestamp_parameter(self, moment: datetime) -> Any:
        """An aware UTC datetime as the database's attachment timestamp column compares it."""
        return moment

    def sqlalchemy_url(self, scheme: str, driver: str | None, rest: str) -> str:
        """The SQLAlchemy async URL for a URL `scheme[+driver]://rest` of this dialect.

        Without a driver the first installed one of `drivers` is picked. Raises
        MissingDependencyError, naming the extra, when the driver is not installed.
        """
        head = self.url_schemes[scheme]
        if driver is not None:
            chosen = next(d for d in self.drivers if d.name == driver)
            if not is_installed(chosen.module):
                raise MissingDependencyError(
                    chosen.module, chosen.extra, f"a {self.name}+{driver} URL"
                )
            return f"{head}+{driver}://{rest}"
        for candidate in self.drivers:
            if is_installed(candidate.module):
                return f"{head}+{candidate.name}://{rest}"
        first, *others = self.drivers
        raise MissingDependencyError(
            first.module,
            first.extra,
            f"a {self.name}:// URL",
            alternative=others[0].extra if others else None,
        )

    # Errors

    def translate(self, error: BaseException) -> DatabaseError:
        """The `chatkit_kit.errors` error for a driver exception of this database."""
        return database_error(self.classify(error), error, self.error_code(error))

    def error_code(self, error: BaseException) -> str | None:
        """The database's error code carried by a driver exception, if any."""
        return None

    def classify(self, error: BaseException) -> type[DatabaseError]:
        """The `chatkit_kit.errors` class for a driver exception of this database."""
        code = self.error_code(error)
        if code:
            kind = self.error_for_code(code)
            if kind is not None:
                return kind
        else:
            message = str(error)
            for pattern, matched in self.messages:
                if pattern.search(message):
                    return matched
        return self.unclassified(error, code)

    def error_for_code(self, code: str) -> type[DatabaseError] | None:
        """The most specific `errors` entry for `code`, or None."""
        kind = self.errors.get(code)
        for length in range(len(code) - 1, 0, -1):
            if kind is not None:
                break
            kind = self.errors.get(code[:length] + "*")
        return kind

    def unclassified(self, error: BaseException, code: str | None) -> type[DatabaseError]:
        """The class for an error no table entry matched."""
        return DatabaseError

    def attempts(self, error: DatabaseError) -> int:
        """How many attempts a store call gets when it failed with `error` (1: no retry)."""
        return self.retries.get(error.code or "", 1) if self.retries else 1

    # Migrations

    record_version = (
        "INSERT INTO {versions} (version, description) VALUES ({version}, {description})"
    )
    """Records one applied migration (formatted with its version and description)."""

    def prelude(self, names: TableNames) -> list[str]:
        """The statements before the first migration of a script: schema, version table."""
        return [names.format(self.create_versions)]

    async def lock_migrations(self, names: TableNames, execute: Execute, fetch: FetchValue) -> None:
        """Take the lock that serializes concurrent migrations (inside their transaction when
        `transactional_ddl`); SQLite's BEGIN IMMEDIATE needs nothing more."""

    async def unlock_migrations(
        self, names: TableNames, execute: Execute, fetch: FetchValue
    ) -> None:
        """Release a lock `lock_migrations` took that outlives a transaction."""

    async def prepare_migrations(
        self, names: TableNames, execute: Execute, fetch: FetchValue
    ) -> None:
        """Create what migrations need before the version can be read (the version table)."""
        await execute(names.format(self.create_versions))

    def script_begin(self, names: TableNames) -> list[str]:
        """A hand-run migration script's opening statements (lock included)."""
        return [self.begin]

    def script_end(self, names: TableNames) -> list[str]:
        return ["COMMIT"]

    script_note: ClassVar[str] = ""
    """A comment line a migration script starts with, if the database needs one."""

    # Statements: the shared text; `Statements` fills in the table names.

    load_thread = "SELECT payload FROM {threads} WHERE owner = :owner AND id = :id"
    thread_exists = "SELECT 1 FROM {threads} WHERE owner = :owner AND id = :id"
    upsert_thread = (
        "INSERT INTO {threads} (owner, id, sort_key, payload) "
        "VALUES (:owner, :id, :sort_key, :payload) "
        "ON CONFLICT (owner, id) DO UPDATE SET payload = excluded.payload"
    )
    # Both in one transaction, the thread row first (see the PostgreSQL dialect's item write).
    delete_thread: tuple[str, ...] = (
        "DELETE FROM {threads} WHERE owner = :owner AND id = :thread_id",
        "DELETE FROM {items} WHERE owner = :owner AND thread_id = :thread_id",
    )
    load_item = (
        "SELECT payload FROM {items} WHERE owner = :owner AND thread_id = :thread_id AND id = :id"
    )
    item_exists = (
        "SELECT 1 FROM {items} WHERE owner = :owner AND thread_id = :thread_id AND id = :id"
    )
    # An item is written only into a thread that has a row (else no row is returned and the
    # store raises NotFoundError), checked by the writing statement itself. SQLite runs one
    # writer at a time, so the check and the write cannot be split by a delete.
    upsert_item = (
        "INSERT INTO {items} (owner, thread_id, id, sort_key, payload) "
        "SELECT :owner, :thread_id, :id, :sort_key, :payload "
        "WHERE EXISTS (SELECT 1 FROM {threads} WHERE owner = :owner AND id = :thread_id) "
        "ON CONFLICT (owner, thread_id, id) DO UPDATE SET payload = excluded.payload "
        "RETURNING 1"
    )
    delete_item = "DELETE FROM {items} WHERE owner = :owner AND thread_id = :thread_id AND id = :id"
    upsert_attachment = (
        "INSERT INTO {attachments} (owner, id, thread_id, payload) "
        "VALUES (:owner, :id, :thread_id, :payload) "
        "ON CONFLICT (owner, id) DO UPDATE SET thread_id = excluded.thread_id, "
        "payload = excluded.payload, updated_at = CURRENT_TIMESTAMP"
    )
    load_attachment = "SELECT payload FROM {attachments} WHERE owner = :owner AND id = :id"
    delete_attachment = "DELETE FROM {attachments} WHERE owner = :owner AND id = :id"
    thread_attachments = (
        "SELECT payload, {id_text} FROM {attachments} "
        "WHERE owner = :owner AND thread_id = :thread_id "
        "ORDER BY created_at, id"
    )
    # Across owners: the orphan sweep of an attachment backend, not a per-request query.
    unattached_attachments = (
        "SELECT {owner_text}, payload, created_at, {id_text} FROM {attachments} "
        "WHERE thread_id IS NULL AND created_at < :before ORDER BY created_at, owner, id "
        "LIMIT :limit"
    )
    delete_orphan_attachment = (
        "DELETE FROM {attachments} WHERE owner = :owner AND id = :id AND thread_id IS NULL "
        "RETURNING id"
    )

    # Keyset pages: the cursor row's (sort_key, seq) is looked up by a subquery inside the page
    # statement, and `LIMIT :limit` receives `limit + 1`.
    _threads_page = (
        "SELECT id, payload FROM {threads} WHERE owner = :owner{cursor} "
        "ORDER BY sort_key {direction}, seq {direction} LIMIT :limit"
    )
    _threads_cursor = (
        " AND (sort_key, seq) {op} "
        "(SELECT c.sort_key, c.seq FROM {threads} c WHERE c.owner = :owner AND c.id = :after)"
    )
    _items_page = (
        "SELECT id, payload FROM {items} WHERE owner = :owner AND thread_id = :thread_id{cursor} "
        "ORDER BY sort_key {direction}, seq {direction} LIMIT :limit"
    )
    _items_cursor = (
        " AND (sort_key, seq) {op} "
        "(SELECT c.sort_key, c.seq FROM {items} c "
        "WHERE c.owner = :owner AND c.thread_id = :thread_id AND c.id = :after)"
    )

    def threads_page(self, order: Order, with_cursor: bool) -> str:
        """The `load_threads` page statement for `order`, with or without `after`."""
        return _page(self._threads_page, self._threads_cursor, order, with_cursor)

    def items_page(self, order: Order, with_cursor: bool) -> str:
        """The `load_thread_items` page statement for `order`, with or without `after`."""
        return _page(self._items_page, self._items_cursor, order, with_cursor)

    def text_column(self, column: str) -> str:
        """A key column selected as text (MySQL keeps keys as bytes)."""
        return column

    # Retention: every statement touches at most :limit rows.

    owner_attachments = (
        "SELECT payload FROM {attachments} WHERE owner = :owner ORDER BY id LIMIT :limit"
    )
    delete_owner_items = (
        "DELETE FROM {items} WHERE (owner, thread_id, id) IN "
        "(SELECT owner, thread_id, id FROM {items} WHERE owner = :owner LIMIT :limit) RETURNING 1"
    )
    delete_owner_threads = (
        "DELETE FROM {threads} WHERE (owner, id) IN "
        "(SELECT owner, id FROM {threads} WHERE owner = :owner LIMIT :limit) RETURNING 1"
    )
    delete_stale_items = (
        "DELETE FROM {items} WHERE (owner, thread_id, id) IN "
        "(SELECT owner, thread_id, id FROM {items} WHERE owner = :owner "
        "AND thread_id = :thread_id AND sort_key < :cutoff LIMIT :limit) RETURNING 1"
    )
    lock_thread_before_empty_delete: str | None = None
    """Run in one transaction before `delete_empty_thread`, where the database's delete would
    not see an item write in flight (None: the delete alone is safe)."""
    # Only once no item is left: a thread that got a new item meanwhile stays (with that item).
    delete_empty_thread = (
        "DELETE FROM {threads} WHERE owner = :owner AND id = :thread_id AND NOT EXISTS "
        "(SELECT 1 FROM {items} i WHERE i.owner = :owner AND i.thread_id = :thread_id) "
        "RETURNING 1"
    )
    _stale_threads = (
        "FROM {threads} t WHERE {owner_filter}t.sort_key < :cutoff AND NOT EXISTS "
        "(SELECT 1 FROM {items} i WHERE i.owner = t.owner AND i.thread_id = t.id "
        "AND i.sort_key >= :cutoff)"
    )

    # Data keys (encryption at rest) and raw payload rows, for rotation and migration.

    load_data_keys = (
        "SELECT version, kek_id, wrapped FROM {data_keys} WHERE owner = :owner ORDER BY version"
    )
    add_data_key = (
        "INSERT INTO {data_keys} (owner, version, kek_id, wrapped) "
        "VALUES (:owner, :version, :kek_id, :wrapped) ON CONFLICT (owner, version) DO NOTHING"
    )
    rewrap_data_key = (
        "UPDATE {data_keys} SET kek_id = :kek_id, wrapped = :wrapped "
        "WHERE owner = :owner AND version = :version AND kek_id = :previous_kek_id "
        "AND wrapped = :previous_wrapped"
    )
    delete_data_keys = "DELETE FROM {data_keys} WHERE owner = :owner"
    delete_data_key = "DELETE FROM {data_keys} WHERE owner = :owner AND version = :version"
    data_keys_not_under = (
        "SELECT {owner_text}, version, kek_id, wrapped FROM {data_keys} "
        "WHERE kek_id <> :kek_id ORDER BY owner, version LIMIT :limit"
    )
    thread_payloads = (
        "SELECT {owner_text}, {id_text}, payload FROM {threads} "
        "WHERE (owner, id) > (:owner, :id) ORDER BY owner, id LIMIT :limit"
    )
    item_payloads = (
        "SELECT {owner_text}, {thread_id_text}, {id_text}, payload FROM {items} "
        "WHERE (owner, thread_id, id) > (:owner, :thread_id, :id) "
        "ORDER BY owner, thread_id, id LIMIT :limit"
    )
    attachment_payloads = (
        "SELECT {owner_text}, {thread_id_text}, {id_text}, payload FROM {attachments} "
        "WHERE (owner, id) > (:owner, :id) ORDER BY owner, id LIMIT :limit"
    )
    replace_thread_payload = (
        "UPDATE {threads} SET payload = :payload "
        "WHERE owner = :owner AND id = :id AND payload = :previous RETURNING 1"
    )
    replace_item_payload = (
        "UPDATE {items} SET payload = :payload WHERE owner = :owner AND thread_id = :thread_id "
        "AND id = :id AND payload = :previous RETURNING 1"
    )
    replace_attachment_payload = (
        "UPDATE {attachments} SET payload = :payload "
        "WHERE owner = :owner AND id = :id AND payload = :previous RETURNING 1"
    )

    def stale_threads(self, owner: bool) -> str:
        """Up to :limit (owner, id) of threads whose latest activity is before :cutoff."""
        columns = f"{self.text_column('t.owner')}, {self.text_column('t.id')} "
        return (
            "SELECT "
            + columns
            + self._stale_threads.replace("{owner_filter}", _owner_filter(owner))
            + " ORDER BY t.sort_key, t.seq LIMIT :limit"
        )

    def count_stale_threads(self, owner: bool) -> str:
        return "SELECT COUNT(*) " + self._stale_threads.replace(
            "{owner_filter}", _owner_filter(owner)
        )


def _owner_filter(owner: bool) -> str:
    return "t.owner = :owner AND " if owner else ""


def _page(template: str, cursor_template: str, order: Order, with_cursor: bool) -> str:
    cursor = cursor_template.replace("{op}", ">" if order == "asc" else "<")
    return template.replace("{cursor}", cursor if with_cursor else "").replace(
        "{direction}", "ASC" if order == "asc" else "DESC"
    )
