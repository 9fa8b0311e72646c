"""The one schema of the SQL stores: versioned migrations, table names and the SQLAlchemy MetaData.

Schema versions are an append-only list (`MIGRATIONS`); each dialect
(`stores.sql.dialects`) supplies every version's statements. A version table records every
applied migration; `apply_migrations` applies the ones past the recorded version under the
dialect's migration lock (PostgreSQL: an advisory lock inside one transaction; SQLite:
`BEGIN IMMEDIATE`; MySQL, whose DDL commits implicitly: a named lock around re-runnable
steps), so several processes may run it at once. Never edit a released migration: append a
new one.

`build_metadata` describes the same PostgreSQL tables for apps whose alembic autogenerate must
know about them; a test checks it against a migrated database.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Re-exported: the old import path keeps working.
from ..errors import SchemaVersionError as SchemaVersionError
from .sql.dialects import SQLDialect, dialect_named, sql_literal
from .sql.dialects.base import Execute as Execute
from .sql.dialects.base import FetchValue as FetchValue
from .sql.dialects.postgresql import check_schema_name as check_schema_name

if TYPE_CHECKING:
    from sqlalchemy import MetaData

Dialect = str
"""A registered dialect's name ("postgresql", "sqlite", "mysql")."""

DEFAULT_SCHEMA = "public"
DEFAULT_TABLE_PREFIX = "chatkit_"
MAX_PREFIX_LENGTH = 40
_PREFIX = re.compile(r"[A-Za-z0-9_]*")


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


@dataclass(frozen=True)
class Names:
    """Quoted, schema-qualified names of the store's tables and indexes for one configuration."""

    dialect: SQLDialect
    schema: str | None
    prefix: str

    @classmethod
    def create(cls, dialect: str | SQLDialect, schema: str | None, prefix: str) -> Names:
        """Validate the configuration and build the names (`dialect`: a name or a dialect)."""
        check_table_prefix(prefix)
        found = dialect_named(dialect)
        return cls(found, found.check_schema(schema), prefix)

    def raw(self, name: str) -> str:
        """The unquoted name of table or index `name` (e.g. "threads")."""
        return self.prefix + name

    def _quote(self, name: str) -> str:
        return self.dialect.quote(self.raw(name))

    def table(self, name: str) -> str:
        """The quoted, qualified name of table `name`."""
        quoted = self._quote(name)
        return quoted if self.schema is None else f"{self.dialect.quote(self.schema)}.{quoted}"

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
    def data_keys(self) -> str:
        return self.table("data_keys")

    @property
    def versions(self) -> str:
        return self.table("schema_version")

    def format(self, template: str, **literals: str) -> str:
        """Fill the quoted table and index names, and the given SQL literals, into `template`.

        Only validated identifiers and literals quoted by `sql_literal` ever reach SQL this way.
        """
        return template.format(
            **literals,
            schema=self.dialect.quote(str(self.schema)),
            schema_literal=sql_literal(str(self.schema)),
            versions_literal=sql_literal(self.raw("schema_version")),
            threads=self.threads,
            items=self.items,
            attachments=self.attachments,
            data_keys=self.data_keys,
            versions=self.versions,
            owner_text=self.dialect.text_column("owner"),
            id_text=self.dialect.text_column("id"),
            thread_id_text=self.dialect.text_column("thread_id"),
            threads_page_idx=self._quote("threads_page_idx"),
            items_page_idx=self._quote("thread_items_page_idx"),
            threads_key_idx=self._quote("threads_key_idx"),
            items_key_idx=self._quote("thread_items_key_idx"),
            attachments_thread_idx=self._quote("attachments_thread_idx"),
            attachments_orphan_idx=self._quote("attachments_orphan_idx"),
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
    """One schema version; each dialect's `migrations[version]` brings the previous one here."""

    version: int
    description: str

    def statements(self, names: Names) -> list[str]:
        """This migration's statements for `names`' dialect, with the table names filled in."""
        return [names.format(t) for t in names.dialect.migrations[self.version]]


MIGRATIONS: Sequence[Migration] = (
    Migration(1, "threads and thread items"),
    Migration(2, "attachments"),
    Migration(3, "attachment indexes: by thread, and unattached (orphans) by age"),
    Migration(4, "data keys: each owner's wrapped data keys (encryption at rest)"),
)

LATEST_VERSION = MIGRATIONS[-1].version

_CURRENT_VERSION = "SELECT COALESCE(MAX(version), 0) FROM {versions}"


def _record_version(names: Names, migration: Migration) -> str:
    return names.format(
        names.dialect.record_version,
        version=str(int(migration.version)),
        description=sql_literal(migration.description),
    )


def version_table_exists_sql(names: Names) -> str:
    """A query returning one row when the version table exists, none otherwise."""
    return names.format(names.dialect.version_table_exists)


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
    dialect = names.dialect
    statements = dialect.prelude(names)
    for migration in _pending(from_version, target):
        statements.extend(migration.statements(names))
        statements.append(_record_version(names, migration))
    header = (
        f"-- chatkit-kit schema migrations {from_version} -> {target} ({dialect.name})\n"
        "-- Apply versions in order; the store refuses to start until the schema is at "
        f"version {LATEST_VERSION}.\n"
    ) + dialect.script_note
    body = ";\n\n".join([*dialect.script_begin(names), *statements, *dialect.script_end(names)])
    return f"{header}{body};\n"


async def apply_migrations(
    names: Names, execute: Execute, fetch_value: FetchValue, target: int | None = None
) -> tuple[int, int]:
    """Apply the migrations past the recorded version, up to `target` (default: latest).

    Runs inside a transaction the caller opened (and commits or rolls back) when the dialect
    has transactional DDL; takes the dialect's migration lock first (and releases one that
    outlives the transaction), so concurrent callers apply each migration exactly once.
    Returns (version found, version now).
    """
    target = check_target(target)
    dialect = names.dialect
    await dialect.lock_migrations(names, execute, fetch_value)
    try:
        await dialect.prepare_migrations(names, execute, fetch_value)
        found = int(await fetch_value(current_version_sql(names)))
        if found > LATEST_VERSION:
            raise too_new(names, found)
        for migration in _pending(found, target):
            for statement in migration.statements(names):
                await execute(statement)
            await execute(_record_version(names, migration))
    except BaseException:
        # The real error wins: on a connection that died mid-migration the unlock fails too
        # (and the server released a connection-held lock with the connection).
        with contextlib.suppress(Exception):
            await dialect.unlock_migrations(names, execute, fetch_value)
        raise
    await dialect.unlock_migrations(names, execute, fetch_value)
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
        names.raw("data_keys"),
        metadata,
        Column("owner", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("kek_id", Text, nullable=False),
        Column("wrapped", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("owner", "version", name=names.raw("data_keys_pkey")),
    )
    Table(
        names.raw("schema_version"),
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("description", Text, nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return metadata
