"""The `chatkit-kit` command line: `migrate`, `prune`, `erase-owner` and `demo`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .stores import _schema

Handler = Callable[[argparse.Namespace], int]


def _dialect_of_url(url: str) -> _schema.Dialect:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise SystemExit(
        f"chatkit-kit migrate: unsupported database URL scheme {scheme!r}; use postgresql://, "
        "postgresql+asyncpg://, postgresql+psycopg:// or sqlite+aiosqlite:///path.db"
    )


async def _open_store(url: str, schema: str | None, prefix: str) -> Any:
    """A store for `url`: AsyncpgStore for postgresql://, SQLAlchemyStore for driver URLs."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        from .stores.asyncpg import AsyncpgStore

        return await AsyncpgStore.connect(url, schema=schema, table_prefix=prefix)
    from .stores.sqlalchemy import SQLAlchemyStore

    if scheme == "sqlite":
        url = "sqlite+aiosqlite" + url[len("sqlite") :]
    return SQLAlchemyStore.from_url(url, schema=schema, table_prefix=prefix)


async def _migrate(url: str, schema: str | None, prefix: str, target: int | None) -> int:
    store = await _open_store(url, schema, prefix)
    async with store:
        before = await store.schema_version()
        after: int = await store.migrate(target=target)
    if before == after:
        print(f"chatkit-kit schema is up to date (version {after})")
    else:
        print(f"chatkit-kit schema migrated from version {before} to {after}")
    return 0


def _run_migrate(args: argparse.Namespace) -> int:
    dialect = _dialect_of_url(args.database_url)
    schema = args.schema if dialect == "postgresql" else None
    if args.schema is not None and dialect == "sqlite":
        raise SystemExit("chatkit-kit migrate: --schema is a PostgreSQL option")
    try:
        names = _schema.Names.create(dialect, schema, args.table_prefix)
        if args.sql:
            sys.stdout.write(_schema.migration_script(names, args.from_version, args.target))
            return 0
        return asyncio.run(_migrate(args.database_url, schema, args.table_prefix, args.target))
    except (ValueError, ConnectionError, _schema.SchemaVersionError) as error:
        print(f"chatkit-kit migrate: {error}", file=sys.stderr)
        return 1


def _add_migrate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="create or upgrade the SQL store tables",
        description="Apply the chatkit-kit schema migrations to a database (idempotent).",
    )
    parser.add_argument(
        "database_url",
        metavar="DATABASE_URL",
        help="postgresql://..., postgresql+asyncpg://..., postgresql+psycopg://... "
        "or sqlite+aiosqlite:///path.db",
    )
    parser.add_argument("--schema", default=None, help="PostgreSQL schema (default: public)")
    parser.add_argument(
        "--table-prefix",
        default=_schema.DEFAULT_TABLE_PREFIX,
        help=f"prefix of every table name (default: {_schema.DEFAULT_TABLE_PREFIX})",
    )
    parser.add_argument(
        "--target", type=int, default=None, help="stop at this schema version (default: latest)"
    )
    parser.add_argument(
        "--sql",
        action="store_true",
        help="print the SQL instead of running it (nothing connects to the database)",
    )
    parser.add_argument(
        "--from-version",
        type=int,
        default=0,
        help="with --sql: the version the database is at now (default: 0, an empty database)",
    )
    parser.set_defaults(handler=_run_migrate)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand registers itself with a `handler`."""
    parser = argparse.ArgumentParser(prog="chatkit-kit", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_migrate(subparsers)
    from ._cli_retention import add_retention

    add_retention(subparsers)
    from .demo.cli import add_demo

    add_demo(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `chatkit-kit` console script."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
