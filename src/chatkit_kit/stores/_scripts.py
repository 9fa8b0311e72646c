"""`migration_script`: the SQL of the schema migrations for a database URL, to run by hand."""

from __future__ import annotations

from . import _schema
from .sql.dialects import dialect_for_url


def migration_script(
    database_url: str,
    *,
    schema: str | None = None,
    table_prefix: str = _schema.DEFAULT_TABLE_PREFIX,
    from_version: int = 0,
    target: int | None = None,
) -> str:
    """The SQL that brings the tables for `database_url` from `from_version` to `target`.

    What `chatkit-kit migrate --sql` prints: it connects to nothing and needs no driver. Raises
    ValueError for a URL of an unsupported database or an option it does not take (`schema`
    outside PostgreSQL, a bad table prefix or target).
    """
    names = _schema.Names.create(dialect_for_url(database_url), schema, table_prefix)
    return _schema.migration_script(names, from_version, target)
