"""What every database subcommand shares: its arguments, their checks, and opening the store.

Every subcommand reads a URL, `--schema` and `--table-prefix` through `database_options`, so a
URL is judged the same everywhere: an unsupported URL, `--schema` on a database without
schemas, or a bad prefix is a usage error (exit status 2) before anything connects.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from .._optional import is_installed
from ..stores import DEFAULT_TABLE_PREFIX, check_table_prefix, resolve_database_url
from ..stores.sql.dialects import SQLDialect, dialect_for_url, url_forms

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(ValueError):
    """A command-line argument is wrong; exit status 2."""


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """The database arguments every database subcommand takes: URL, schema and table prefix."""
    parser.add_argument(
        "database_url",
        metavar="DATABASE_URL",
        help=url_forms(),
    )
    parser.add_argument("--schema", default=None, help="PostgreSQL schema (default: public)")
    parser.add_argument(
        "--table-prefix",
        default=DEFAULT_TABLE_PREFIX,
        help=f"prefix of every table name (default: {DEFAULT_TABLE_PREFIX})",
    )
    parser.add_argument(
        "--pgbouncer",
        action="store_true",
        help="PostgreSQL: DATABASE_URL is PgBouncer in transaction pooling mode "
        "(no prepared statement is reused across transactions)",
    )


@dataclass(frozen=True)
class DatabaseOptions:
    """The checked database arguments of one subcommand."""

    url: str
    dialect: SQLDialect
    schema: str | None
    table_prefix: str
    pgbouncer: bool = False
    """The URL is PgBouncer in transaction pooling mode."""


def database_options(args: argparse.Namespace) -> DatabaseOptions:
    """The database arguments of `args`, checked the same way for every subcommand."""
    try:
        dialect = dialect_for_url(args.database_url)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.schema is not None and not dialect.schemas:
        raise UsageError(
            f"--schema is a PostgreSQL option; on {dialect.title} the tables live in "
            f"{dialect.tables_live_in}: use --table-prefix"
        )
    try:
        dialect.check_schema(args.schema)
        check_table_prefix(args.table_prefix)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return DatabaseOptions(
        args.database_url,
        dialect,
        args.schema,
        args.table_prefix,
        bool(getattr(args, "pgbouncer", False)),
    )


def _uses_asyncpg_directly(options: DatabaseOptions) -> bool:
    """Whether the URL can run on AsyncpgStore (needs only the asyncpg extra, no SQLAlchemy)."""
    driver = options.url.partition("://")[0].lower().partition("+")[2]
    return (
        "asyncpg" in options.dialect.native_drivers
        and driver in ("", "asyncpg")
        and is_installed("asyncpg")
    )


async def open_store(options: DatabaseOptions, codec: Any = None) -> Any:
    """A store for the options: AsyncpgStore for PostgreSQL when asyncpg is installed
    (SQLAlchemy not needed), else SQLAlchemyStore with the driver `resolve_database_url` picks.
    `codec`: the store's `codec=` (default JSON)."""
    url, schema, prefix = options.url, options.schema, options.table_prefix
    if _uses_asyncpg_directly(options):
        from ..stores.asyncpg import AsyncpgStore

        dsn = "postgresql://" + url.partition("://")[2]
        return await AsyncpgStore.connect(
            dsn, schema=schema, table_prefix=prefix, pgbouncer=options.pgbouncer, codec=codec
        )
    resolve_database_url(url)  # a missing driver is reported before a missing SQLAlchemy
    from ..stores.sqlalchemy import SQLAlchemyStore

    return SQLAlchemyStore.from_url(
        url, schema=schema, table_prefix=prefix, pgbouncer=options.pgbouncer, codec=codec
    )


def add_key_provider_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the key-encryption keys come from (the encryption subcommands)."""
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--keyring",
        metavar="FILE",
        default=None,
        help="a LocalKeyProvider keyring JSON file (default: the keyring in the environment "
        "variable named by --keyring-env)",
    )
    keys.add_argument(
        "--kms-key-id",
        metavar="KEY",
        default=None,
        help="wrap data keys with this AWS KMS key (id, ARN or alias/...); AWS credentials and "
        "region come from the usual AWS configuration",
    )
    parser.add_argument(
        "--keyring-env",
        metavar="VAR",
        default="CHATKIT_KIT_KEYRING",
        help="environment variable holding the keyring JSON, or @FILE (default: "
        "CHATKIT_KIT_KEYRING)",
    )
    parser.add_argument(
        "--kms-endpoint-url", default=None, help="AWS KMS endpoint (e.g. a local test server)"
    )
    parser.add_argument("--kms-region", default=None, help="AWS region of the KMS key")


def key_provider(args: argparse.Namespace) -> Any:
    """The key provider `add_key_provider_arguments` describes (UsageError if unusable)."""
    if args.kms_key_id is not None:
        from ..encryption import KMSKeyProvider

        return KMSKeyProvider(
            args.kms_key_id, region_name=args.kms_region, endpoint_url=args.kms_endpoint_url
        )
    from ..encryption import LocalKeyProvider

    try:
        if args.keyring is not None:
            return LocalKeyProvider.from_file(args.keyring)
        return LocalKeyProvider.from_env(args.keyring_env)
    except (OSError, ValueError) as error:
        raise UsageError(f"no usable keyring: {error}") from None
