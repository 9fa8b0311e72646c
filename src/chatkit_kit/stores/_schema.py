"""The one schema of the SQL stores: versioned migrations, table names and the SQLAlchemy MetaData.

Migrations are an append-only list of SQL per dialect (PostgreSQL, SQLite). A version table
records every applied migration; `apply_migrations` applies the ones past the recorded version
inside one transaction, under a PostgreSQL advisory lock (SQLite: `BEGIN IMMEDIATE`), so several
processes may run it at once. Never edit a released migration: append a new one.

Payloads are `text` holding JSON, not `jsonb`: `jsonb` rejects the escape `\\u0000`, and
ChatKit text may contain U+0000 (see docs/stores.md). Every JSON text the codec writes escapes
control characters, so the column itself never holds a NUL.

`build_metadata` describes the same PostgreSQL tables for apps whose alembic autogenerate must
know about them; a test checks it against a migrated database.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

# Re-exported: the old import path keeps working.
from ..errors import SchemaVersionError as SchemaVersionError
from . import _mysql

if TYPE_CHECKING:
    from sqlalchemy import MetaData

Dialect = Literal["postgresql", "sqlite", "mysql"]

DEFAULT_SCHEMA = "public"
DEFAULT_TABLE_PREFIX = "chatkit_"
MAX_PREFIX_LENGTH = 40
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX = re.compile(r"[A-Za-z0-9_]*")


_SYSTEM_SCHEMA = re.compile(r"information_schema|pg_.*", re.IGNORECASE)


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


def check_table_prefix(prefix: str) -> str:
    """Return `prefix` if table names built from it are plain identifiers, else raise ValueError."""
    if (
        not isinstance(prefix, str)
        or not _PREFIX.fullmatch(prefix)
        or len(prefix) > MAX_PREFIX_LENGTH
        or prefix[:1].isdigit()
    ):
        raise ValueError(
            f"table prefix {prefix!r} is not usable: use at most {MAX_PREFIX_LENGTH} letters, "
            "digits and underscores, not starting with a digit"
        )
    return prefix


def sql_literal(text: str) -> str:
    """Quote `text` as a SQL string literal (for our own constants, never for user data)."""
    return "'" + text.replace("'", "''") + "'"


def _quote(identifier: str, dialect: Dialect = "postgresql") -> str:
    return f"`{identifier}`" if dialect == "mysql" else f'"{identifier}"'


@dataclass(frozen=True)
class Names:
    """Quoted, schema-qualified names of the store's tables and indexes for one configuration."""

    dialect: Dialect
    schema: str | None
    prefix: str

    @classmethod
    def create(cls, dialect: Dialect, schema: str | None, prefix: str) -> Names:
        """Validate the configuration and build the names."""
        check_table_prefix(prefix)
        if dialect == "sqlite":
            if schema is not None:
                raise ValueError(
                    f"schema={schema!r} is a PostgreSQL option; on SQLite use table_prefix "
                    "to keep several stores apart in one database file"
                )
        elif dialect == "mysql":
            if schema is not None:
                raise ValueError(
                    f"schema={schema!r} is a PostgreSQL option; on MySQL the tables live in "
                    "the URL's database: use table_prefix to keep several stores apart in it"
                )
        else:
            schema = check_schema_name(DEFAULT_SCHEMA if schema is None else schema)
        return cls(dialect, schema, prefix)

    def raw(self, name: str) -> str:
        """The unquoted name of table or index `name` (e.g. "threads")."""
        return self.prefix + name

    def table(self, name: str) -> str:
        """The quoted, qualified name of table `name`."""
        quoted = _quote(self.raw(name), self.dialect)
        return quoted if self.schema is None else f"{_quote(self.schema)}.{quoted}"

    @property
    def threads(self) -> str:
        return self.table("threads")

    @property
    def items(self) -> str:
        return self.table("thread_items")

    @property
    def attachments(self) -> str:
        return self.table("attachments")

    @property
    def versions(self) -> str:
        return self.table("schema_version")

    def format(self, template: str, **literals: str) -> str:
        """Fill the quoted table and index names, and the given SQL literals, into `template`.

        Only validated identifiers and literals quoted by `sql_literal` ever reach SQL this way.
        """
        return template.format(
            **literals,
            schema=_quote(str(self.schema)),
            schema_literal=sql_literal(str(self.schema)),
            versions_literal=sql_literal(self.raw("schema_version")),
            threads=self.threads,
            items=self.items,
            attachments=self.attachments,
            versions=self.versions,
            threads_page_idx=_quote(self.raw("threads_page_idx"), self.dialect),
            items_page_idx=_quote(self.raw("thread_items_page_idx"), self.dialect),
            threads_key_idx=_quote(self.raw("threads_key_idx"), self.dialect),
            items_key_idx=_quote(self.raw("thread_items_key_idx"), self.dialect),
            attachments_thread_idx=_quote(self.raw("attachments_thread_idx"), self.dialect),
            attachments_orphan_idx=_quote(self.raw("attachments_orphan_idx"), self.dialect),
            attachments_literal=sql_literal(self.raw("attachments")),
            attachments_thread_idx_literal=sql_literal(self.raw("attachments_thread_idx")),
        )

    @property
    def lock_key(self) -> int:
        """The PostgreSQL advisory lock key that serializes migrations of this schema."""
        digest = hashlib.blake2b(
            f"chatkit-kit:migrate:{self.schema}:{self.prefix}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Migration:
    """One schema version: the statements that bring the previous version to this one."""

    version: int
    description: str
    postgresql: tuple[str, ...]
    sqlite: tuple[str, ...]

    def statements(self, names: Names) -> list[str]:
        """This migration's statements for `names`' dialect, with the table names filled in."""
        if names.dialect == "mysql":
            templates = _mysql.MIGRATIONS[self.version]
        else:
            templates = self.postgresql if names.dialect == "postgresql" else self.sqlite
        return [names.format(t) for t in templates]


# `list_thread_attachments` (the delete-with-thread cascade) and the orphan sweep's
# `list_unattached_attachments`, which reads the partial index in its ORDER BY order.
_ATTACHMENT_INDEXES = (
    "CREATE INDEX {attachments_thread_idx} ON {attachments} (owner, thread_id)",
    "CREATE INDEX {attachments_orphan_idx} ON {attachments} (created_at, owner, id) "
    "WHERE thread_id IS NULL",
)

MIGRATIONS: Sequence[Migration] = (
    Migration(
        1,
        "threads and thread items",
        postgresql=(
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
        sqlite=(
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
    ),
    Migration(
        2,
        "attachments",
        postgresql=(
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
        sqlite=(
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
    ),
    Migration(
        3,
        "attachment indexes: by thread, and unattached (orphans) by age",
        postgresql=_ATTACHMENT_INDEXES,
        sqlite=_ATTACHMENT_INDEXES,
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_CREATE_VERSIONS = {
    "postgresql": """CREATE TABLE IF NOT EXISTS {versions} (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)""",
    "sqlite": """CREATE TABLE IF NOT EXISTS {versions} (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)""",
    "mysql": _mysql.CREATE_VERSIONS,
}


_RECORD_VERSION = "INSERT INTO {versions} (version, description) VALUES ({version}, {description})"
_VERSION_TABLE_EXISTS = {
    "postgresql": "SELECT 1 FROM pg_catalog.pg_tables "
    "WHERE schemaname = {schema_literal} AND tablename = {versions_literal}",
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = {versions_literal}",
    "mysql": _mysql.VERSION_TABLE_EXISTS,
}
_LOCK = "SELECT pg_advisory_xact_lock({key})"
_CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"
_CURRENT_VERSION = "SELECT COALESCE(MAX(version), 0) FROM {versions}"
_SCHEMA_EXISTS = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {schema_literal}"


# MySQL: recording a version again (a printed script run a second time) changes nothing.
_RECORD_VERSION_MYSQL = _RECORD_VERSION + " ON DUPLICATE KEY UPDATE version = version"


def _record_version(names: Names, migration: Migration) -> str:
    return names.format(
        _RECORD_VERSION_MYSQL if names.dialect == "mysql" else _RECORD_VERSION,
        version=str(int(migration.version)),
        description=sql_literal(migration.description),
    )


def version_table_exists_sql(names: Names) -> str:
    """A query returning one row when the version table exists, none otherwise."""
    return names.format(_VERSION_TABLE_EXISTS[names.dialect])


def current_version_sql(names: Names) -> str:
    """A query returning the highest applied version (0 when none)."""
    return names.format(_CURRENT_VERSION)


def _pending(current: int, target: int) -> list[Migration]:
    return [m for m in MIGRATIONS if current < m.version <= target]


def check_target(target: int | None) -> int:
    if target is None:
        return LATEST_VERSION
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target:
        raise ValueError(f"target version must be an int >= 0, got {target!r}")
    if target > LATEST_VERSION:
        raise ValueError(
            f"target version {target} is newer than this chatkit-kit supports "
            f"(schema version {LATEST_VERSION})"
        )
    return target


def too_new(names: Names, found: int) -> SchemaVersionError:
    """The error for a database migrated by a newer chatkit-kit."""
    return SchemaVersionError(
        f"the chatkit-kit tables {names.table('*')} are at schema version {found}, but this "
        f"chatkit-kit supports schema versions up to {LATEST_VERSION}; upgrade chatkit-kit "
        "(migrations are never rolled back)"
    )


def too_old(names: Names, found: int) -> SchemaVersionError:
    """The error for a database that still needs migrations."""
    state = "have not been created" if found == 0 else f"are at schema version {found}"
    return SchemaVersionError(
        f"the chatkit-kit tables {names.table('*')} {state}; this chatkit-kit needs schema "
        f"version {LATEST_VERSION}: run `await store.migrate()` or "
        "`chatkit-kit migrate DATABASE_URL` first"
    )


def migration_script(names: Names, from_version: int = 0, target: int | None = None) -> str:
    """The SQL a DBA runs by hand to bring the schema from `from_version` to `target`."""
    target = check_target(target)
    statements = _prelude(names)
    for migration in _pending(from_version, target):
        statements.extend(migration.statements(names))
        statements.append(_record_version(names, migration))
    header = (
        f"-- chatkit-kit schema migrations {from_version} -> {target} ({names.dialect})\n"
        "-- Apply versions in order; the store refuses to start until the schema is at "
        f"version {LATEST_VERSION}.\n"
    )
    if names.dialect == "mysql":
        # DDL commits implicitly on MySQL: no transaction, but the same named lock as migrate().
        header += "-- Run it in the target database (USE it first); every step can be repeated.\n"
        begin, commit = _mysql.acquire_lock_sql(names), _mysql.release_lock_sql(names)
    else:
        begin = "BEGIN IMMEDIATE" if names.dialect == "sqlite" else "BEGIN"
        commit = "COMMIT"
    body = ";\n\n".join([begin, *statements, commit])
    return f"{header}{body};\n"


def _prelude(names: Names) -> list[str]:
    statements: list[str] = []
    if names.dialect == "postgresql":
        statements.append(names.format(_LOCK, key=str(names.lock_key)))
        statements.append(names.format(_CREATE_SCHEMA))
    statements.append(names.format(_CREATE_VERSIONS[names.dialect]))
    return statements


Execute = Callable[[str], Awaitable[None]]
FetchValue = Callable[[str], Awaitable[Any]]


async def apply_migrations(
    names: Names, execute: Execute, fetch_value: FetchValue, target: int | None = None
) -> tuple[int, int]:
    """Apply the migrations past the recorded version, up to `target` (default: latest).

    Runs inside a transaction the caller opened (and commits or rolls back). On PostgreSQL the
    first statement takes a transaction-scoped advisory lock, so concurrent callers apply
    each migration exactly once. On MySQL (DDL commits implicitly) the caller holds the
    `GET_LOCK` lock around this call instead. Returns (version found, version now).
    """
    target = check_target(target)
    prelude = _prelude(names)
    if names.dialect == "postgresql":
        await execute(prelude[0])  # the advisory lock, before anything else
        prelude = prelude[1:]
        exists = await fetch_value(names.format(_SCHEMA_EXISTS))
        if exists is not None:
            prelude = prelude[1:]  # CREATE SCHEMA needs a privilege the app may not have
    elif names.dialect == "mysql" and await fetch_value(version_table_exists_sql(names)):
        prelude = []  # CREATE TABLE IF NOT EXISTS of an existing table leaves a warning
    for statement in prelude:
        await execute(statement)
    found = int(await fetch_value(current_version_sql(names)))
    if found > LATEST_VERSION:
        raise too_new(names, found)
    for migration in _pending(found, target):
        for statement in migration.statements(names):
            await execute(statement)
        await execute(_record_version(names, migration))
    return found, max(found, target)


async def read_version(names: Names, fetch_value: FetchValue) -> int:
    """The applied schema version (0 when the version table does not exist)."""
    if await fetch_value(version_table_exists_sql(names)) is None:
        return 0
    return int(await fetch_value(current_version_sql(names)))


def check_version(names: Names, found: int) -> None:
    """Raise SchemaVersionError unless `found` is the version this release works with."""
    if found > LATEST_VERSION:
        raise too_new(names, found)
    if found < LATEST_VERSION:
        raise too_old(names, found)


def build_metadata(schema: str | None = None, table_prefix: str = DEFAULT_TABLE_PREFIX) -> MetaData:
    """SQLAlchemy `MetaData` describing the PostgreSQL tables the migrations create.

    For alembic users: include it in `target_metadata` so autogenerate neither drops nor
    recreates chatkit-kit's tables. Create and change the tables only with `migrate()`.
    """
    from sqlalchemy import (
        BigInteger,
        Column,
        DateTime,
        Identity,
        Index,
        Integer,
        MetaData,
        PrimaryKeyConstraint,
        Table,
        Text,
        func,
    )

    names = Names.create("postgresql", schema, table_prefix)
    metadata = MetaData(schema=names.schema)
    threads = Table(
        names.raw("threads"),
        metadata,
        Column("owner", Text, nullable=False),
        Column("id", Text, nullable=False),
        Column("seq", BigInteger, Identity(always=True), nullable=False),
        Column("sort_key", BigInteger, nullable=False),
        Column("payload", Text, nullable=False),
        PrimaryKeyConstraint("owner", "id", name=names.raw("threads_pkey")),
    )
    Index(names.raw("threads_page_idx"), threads.c.owner, threads.c.sort_key, threads.c.seq)
    items = Table(
        names.raw("thread_items"),
        metadata,
        Column("owner", Text, nullable=False),
        Column("thread_id", Text, nullable=False),
        Column("id", Text, nullable=False),
        Column("seq", BigInteger, Identity(always=True), nullable=False),
        Column("sort_key", BigInteger, nullable=False),
        Column("payload", Text, nullable=False),
        PrimaryKeyConstraint("owner", "thread_id", "id", name=names.raw("thread_items_pkey")),
    )
    Index(
        names.raw("thread_items_page_idx"),
        items.c.owner,
        items.c.thread_id,
        items.c.sort_key,
        items.c.seq,
    )
    attachments = Table(
        names.raw("attachments"),
        metadata,
        Column("owner", Text, nullable=False),
        Column("id", Text, nullable=False),
        Column("thread_id", Text, nullable=True),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("owner", "id", name=names.raw("attachments_pkey")),
    )
    Index(names.raw("attachments_thread_idx"), attachments.c.owner, attachments.c.thread_id)
    Index(
        names.raw("attachments_orphan_idx"),
        attachments.c.created_at,
        attachments.c.owner,
        attachments.c.id,
        postgresql_where=attachments.c.thread_id.is_(None),
    )
    Table(
        names.raw("schema_version"),
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("description", Text, nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return metadata
