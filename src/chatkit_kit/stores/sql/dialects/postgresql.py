"""PostgreSQL: schemas, transactional DDL under an advisory lock, SQLSTATE error classes.

Payloads are `text` holding JSON, not `jsonb`: `jsonb` rejects the escape `\\u0000`, and
ChatKit text may contain U+0000 (see docs/stores.md). Every JSON text the codec writes escapes
control characters, so the column itself never holds a NUL.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from ....errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    DeadlockError,
)
from .base import (
    CONFIGURATION_MESSAGES,
    Execute,
    FetchValue,
    SQLDialect,
    TableNames,
    URLDriver,
)

_SYSTEM_SCHEMA = re.compile(r"information_schema|pg_.*", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# `list_thread_attachments` (the delete-with-thread cascade) and the orphan sweep's
# `list_unattached_attachments`, which reads the partial index in its ORDER BY order.
# SQLite runs the same statements.
ATTACHMENT_INDEXES = (
    "CREATE INDEX {attachments_thread_idx} ON {attachments} (owner, thread_id)",
    "CREATE INDEX {attachments_orphan_idx} ON {attachments} (created_at, owner, id) "
    "WHERE thread_id IS NULL",
)


def check_schema_name(schema: str) -> str:
    """Return `schema` if it is a plain PostgreSQL identifier, else raise ValueError.

    System schemas (`information_schema`, `pg_catalog`, `pg_toast*`, any `pg_*`, which
    PostgreSQL reserves) are refused.
    """
    if not isinstance(schema, str) or not _IDENTIFIER.fullmatch(schema) or len(schema) > 63:
        raise ValueError(
            f"schema {schema!r} is not usable: use 1 to 63 letters, digits and underscores, "
            "not starting with a digit"
        )
    if _SYSTEM_SCHEMA.fullmatch(schema):
        raise ValueError(
            f"schema {schema!r} is a PostgreSQL system schema; keep the store's tables in "
            "your own schema (the default is public)"
        )
    return schema


_CONNECTION_ERRORS = frozenset({"OperationalError", "InterfaceError"})
"""DB-API error classes (and their subclasses, e.g. psycopg's ConnectionTimeout) that without
a SQLSTATE mean the connection failed."""


def _unique_statement_name() -> str:
    return f"__chatkit_kit_{uuid.uuid4().hex}__"


class PostgreSQLDialect(SQLDialect):
    name = "postgresql"
    # prune: wait for item writes in flight (each holds the thread row FOR KEY SHARE until it
    # commits), so the empty-thread delete, a new statement with a new snapshot under READ
    # COMMITTED, sees their items. Without it the delete waits for the lock and then deletes
    # the thread without re-checking NOT EXISTS: an orphan item.
    lock_thread_before_empty_delete = (
        "SELECT 1 FROM {threads} WHERE owner = :owner AND id = :thread_id FOR UPDATE"
    )
    title = "PostgreSQL"
    backends = ("postgresql",)
    schemas = True
    default_schema = "public"
    native_drivers = ("asyncpg",)
    url_schemes: ClassVar[Mapping[str, str]] = {
        "postgresql": "postgresql",
        "postgres": "postgresql",
    }
    drivers = (
        URLDriver("asyncpg", "asyncpg", "asyncpg"),
        URLDriver("psycopg", "psycopg", "psycopg"),
    )
    url_example = "postgresql://user@host/db, postgresql+psycopg://..."
    direct_statement_drivers = frozenset({"asyncpg", "psycopg"})

    errors: ClassVar[Mapping[str, type[DatabaseError]]] = {
        "40P01": DeadlockError,  # deadlock_detected: this transaction was the victim
        "40001": DeadlockError,  # serialization_failure (REPEATABLE READ, SERIALIZABLE)
        "57014": DatabaseTimeoutError,  # query_canceled: statement_timeout (or a cancel request)
        "55P03": DatabaseTimeoutError,  # lock_not_available: lock_timeout, NOWAIT
        "57P01": DatabaseUnavailableError,  # admin_shutdown: pg_terminate_backend, shutdown
        "57P02": DatabaseUnavailableError,  # crash_shutdown
        "57P03": DatabaseUnavailableError,  # cannot_connect_now: starting up, recovering
        "57P05": DatabaseUnavailableError,  # idle_session_timeout
        "25P03": DatabaseUnavailableError,  # idle_in_transaction_session_timeout
        "25006": DatabaseUnavailableError,  # read_only_sql_transaction: a standby after failover
        "53300": DatabaseUnavailableError,  # too_many_connections
        "53000": DatabaseUnavailableError,  # insufficient_resources
        "57P04": DatabaseConfigurationError,  # database_dropped
        "3D000": DatabaseConfigurationError,  # invalid_catalog_name: the database does not exist
        "3F000": DatabaseConfigurationError,  # invalid_schema_name
        "42501": DatabaseConfigurationError,  # insufficient_privilege
        "42P01": DatabaseConfigurationError,  # undefined_table: tables dropped after the check
        "42703": DatabaseConfigurationError,  # undefined_column: tables changed by hand
        "08*": DatabaseUnavailableError,  # connection_exception
        "28*": DatabaseConfigurationError,  # invalid_authorization: role, password, pg_hba
    }
    messages = CONFIGURATION_MESSAGES
    # PostgreSQL rolled the victim's transaction back: the whole call runs again.
    retries: ClassVar[Mapping[str, int]] = {"40P01": 5, "40001": 5}

    migrations: ClassVar[Mapping[int, tuple[str, ...]]] = {
        1: (
            """CREATE TABLE {threads} (
    owner text NOT NULL,
    id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    sort_key bigint NOT NULL,
    payload text NOT NULL,
    PRIMARY KEY (owner, id)
)""",
            "CREATE INDEX {threads_page_idx} ON {threads} (owner, sort_key, seq)",
            """CREATE TABLE {items} (
    owner text NOT NULL,
    thread_id text NOT NULL,
    id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    sort_key bigint NOT NULL,
    payload text NOT NULL,
    PRIMARY KEY (owner, thread_id, id)
)""",
            "CREATE INDEX {items_page_idx} ON {items} (owner, thread_id, sort_key, seq)",
        ),
        2: (
            """CREATE TABLE {attachments} (
    owner text NOT NULL,
    id text NOT NULL,
    thread_id text,
    payload text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, id)
)""",
        ),
        3: ATTACHMENT_INDEXES,
        4: (
            """CREATE TABLE {data_keys} (
    owner text NOT NULL,
    version integer NOT NULL,
    kek_id text NOT NULL,
    wrapped text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, version)
)""",
        ),
    }
    create_versions = """CREATE TABLE IF NOT EXISTS {versions} (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
    version_table_exists = (
        "SELECT 1 FROM pg_catalog.pg_tables "
        "WHERE schemaname = {schema_literal} AND tablename = {versions_literal}"
    )
    _lock = "SELECT pg_advisory_xact_lock({key})"
    _create_schema = "CREATE SCHEMA IF NOT EXISTS {schema}"
    _schema_exists = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {schema_literal}"

    # Item writes hold the thread row (FOR KEY SHARE) until they commit, so a concurrent
    # delete_thread (thread row first) waits for them and then deletes their items with a
    # snapshot taken after they committed, and a write that waited for a delete finds no row
    # and writes nothing.
    upsert_item = (
        "WITH live AS (SELECT 1 FROM {threads} WHERE owner = :owner AND id = :thread_id "
        "FOR KEY SHARE) "
        "INSERT INTO {items} (owner, thread_id, id, sort_key, payload) "
        "SELECT :owner, :thread_id, :id, CAST(:sort_key AS bigint), :payload "
        "WHERE EXISTS (SELECT 1 FROM live) "
        "ON CONFLICT (owner, thread_id, id) DO UPDATE SET payload = excluded.payload "
        "RETURNING 1"
    )

    def check_schema(self, schema: str | None) -> str | None:
        return check_schema_name(self.default_schema if schema is None else schema)

    def error_code(self, error: BaseException) -> str | None:
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        return str(code) if code else None

    def unclassified(self, error: BaseException, code: str | None) -> type[DatabaseError]:
        if code is None and {t.__name__ for t in type(error).__mro__} & _CONNECTION_ERRORS:
            return DatabaseUnavailableError  # connection refused, lost, reset
        return DatabaseError

    def engine_arguments(self, driver: str, kwargs: dict[str, Any], *, pgbouncer: bool) -> None:
        if not pgbouncer:
            return
        # No server-side prepared statement may be reused across transactions.
        if driver == "psycopg":
            self.connect_arg_defaults(kwargs, prepare_threshold=None)
        elif driver == "asyncpg":
            self.connect_arg_defaults(
                kwargs,
                statement_cache_size=0,
                prepared_statement_cache_size=0,
                prepared_statement_name_func=_unique_statement_name,
            )

    def statement_timeout_arguments(
        self, driver: str, kwargs: dict[str, Any], seconds: float | None
    ) -> None:
        # A new connection during a network black hole waits for the driver's connect timeout
        # (psycopg/libpq: none), which the statement timeout bounds too.
        if seconds is None:
            return
        if driver == "psycopg":
            # libpq takes whole seconds, at least 2.
            self.connect_arg_defaults(kwargs, connect_timeout=max(2, math.ceil(seconds)))
        elif driver == "asyncpg":
            self.connect_arg_defaults(kwargs, timeout=seconds)

    # Migrations: one transaction under a transaction-scoped advisory lock.

    def _lock_statement(self, names: TableNames) -> str:
        return names.format(self._lock, key=str(names.lock_key))

    def prelude(self, names: TableNames) -> list[str]:
        return [names.format(self._create_schema), *super().prelude(names)]

    async def lock_migrations(self, names: TableNames, execute: Execute, fetch: FetchValue) -> None:
        await execute(self._lock_statement(names))

    async def prepare_migrations(
        self, names: TableNames, execute: Execute, fetch: FetchValue
    ) -> None:
        if await fetch(names.format(self._schema_exists)) is None:
            # Only when missing: CREATE SCHEMA needs a privilege the app may not have.
            await execute(names.format(self._create_schema))
        await super().prepare_migrations(names, execute, fetch)

    def script_begin(self, names: TableNames) -> list[str]:
        return [self.begin, self._lock_statement(names)]
