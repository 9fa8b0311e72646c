"""The `chatkit-kit` command line: `migrate`, `prune`, `erase-owner`, `demo` and `conformance`.

User errors print one line saying what to do, with no traceback (`--debug` shows it): exit
status 2 for usage errors (a bad URL, option or name), 1 for failures (a missing extra, an
unreachable or misconfigured database, a schema this release cannot use).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._optional import is_installed
from .errors import (
    ChatKitKitError,
    DatabaseConfigurationError,
    DatabaseUnavailableError,
    MissingDependencyError,
    SchemaVersionError,
)
from .stores import _schema
from .stores._urls import database_backend, redact_database_url, resolve_database_url

Handler = Callable[[argparse.Namespace], int]


def dialect_name(dialect: str) -> str:
    return {"sqlite": "SQLite", "mysql": "MySQL"}.get(dialect, dialect)


EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(ValueError):
    """A command-line argument is wrong; exit status 2."""


def _uses_asyncpg_directly(url: str) -> bool:
    """Whether `url` can run on AsyncpgStore (needs only the asyncpg extra, no SQLAlchemy)."""
    backend, driver = database_backend(url)
    return backend == "postgresql" and driver in (None, "asyncpg") and is_installed("asyncpg")


async def _open_store(url: str, schema: str | None, prefix: str, pgbouncer: bool = False) -> Any:
    """A store for `url`: AsyncpgStore for PostgreSQL when asyncpg is installed (SQLAlchemy not
    needed), else SQLAlchemyStore with the driver `resolve_database_url` picks. `pgbouncer`:
    the URL is PgBouncer in transaction pooling mode (no prepared statement is reused)."""
    if _uses_asyncpg_directly(url):
        from .stores.asyncpg import AsyncpgStore

        dsn = "postgresql://" + url.partition("://")[2]
        return await AsyncpgStore.connect(
            dsn, schema=schema, table_prefix=prefix, pgbouncer=pgbouncer
        )
    resolve_database_url(url)  # a missing driver is reported before a missing SQLAlchemy
    from .stores.sqlalchemy import SQLAlchemyStore

    return SQLAlchemyStore.from_url(url, schema=schema, table_prefix=prefix, pgbouncer=pgbouncer)


async def _migrate(
    url: str, schema: str | None, prefix: str, target: int | None, pgbouncer: bool = False
) -> int:
    store = await _open_store(url, schema, prefix, pgbouncer)
    async with store:
        before = await store.schema_version()
        after: int = await store.migrate(target=target)
    if before == after:
        print(f"chatkit-kit schema is up to date (version {after})")
    else:
        print(f"chatkit-kit schema migrated from version {before} to {after}")
    return 0


def _run_migrate(args: argparse.Namespace) -> int:
    try:
        dialect, _driver = database_backend(args.database_url)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.schema is not None and dialect != "postgresql":
        where = "the URL's database" if dialect == "mysql" else "one database file"
        raise UsageError(
            f"--schema is a PostgreSQL option; on {dialect_name(dialect)} the tables live in "
            f"{where}: use --table-prefix"
        )
    try:
        names = _schema.Names.create(dialect, args.schema, args.table_prefix)  # type: ignore[arg-type]
        _schema.check_target(args.target)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.sql:
        sys.stdout.write(_schema.migration_script(names, args.from_version, args.target))
        return 0
    return asyncio.run(
        _migrate(args.database_url, args.schema, args.table_prefix, args.target, args.pgbouncer)
    )


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """The database arguments every database subcommand takes: URL, schema and table prefix."""
    parser.add_argument(
        "database_url",
        metavar="DATABASE_URL",
        help="postgresql://... (or postgres://), postgresql+asyncpg://..., "
        "postgresql+psycopg://..., mysql://... (or mariadb://, mysql+asyncmy://..., "
        "mysql+aiomysql://...), sqlite:///path.db or sqlite+aiosqlite:///path.db",
    )
    parser.add_argument("--schema", default=None, help="PostgreSQL schema (default: public)")
    parser.add_argument(
        "--table-prefix",
        default=_schema.DEFAULT_TABLE_PREFIX,
        help=f"prefix of every table name (default: {_schema.DEFAULT_TABLE_PREFIX})",
    )
    parser.add_argument(
        "--pgbouncer",
        action="store_true",
        help="PostgreSQL: DATABASE_URL is PgBouncer in transaction pooling mode "
        "(no prepared statement is reused across transactions)",
    )


def _add_migrate(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "migrate",
        parents=[common],
        help="create or upgrade the SQL store tables",
        description="Apply the chatkit-kit schema migrations to a database (idempotent).",
    )
    add_database_arguments(parser)
    parser.add_argument(
        "--target", type=int, default=None, help="stop at this schema version (default: latest)"
    )
    parser.add_argument(
        "--sql",
        action="store_true",
        help="print the SQL instead of running it (connects to nothing, needs no driver)",
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
    # --debug is accepted before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    parser = argparse.ArgumentParser(prog="chatkit-kit", description=__doc__, parents=[common])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_migrate(subparsers, common)
    from ._cli_retention import add_retention

    add_retention(subparsers, common)
    try:
        from .demo.cli import add_demo

        add_demo(subparsers, common)
    except MissingDependencyError as missing:
        # `migrate` must work with only the extra its URL needs; `demo` then says what it needs.
        if "demo" not in subparsers.choices:
            _add_unavailable(subparsers, "demo", "run the demo ChatKit backend", missing)
    from .testing._cli import add_conformance

    add_conformance(subparsers)
    return parser


def _add_unavailable(
    subparsers: Any, name: str, summary: str, missing: MissingDependencyError
) -> None:
    """A subcommand whose optional dependencies are missing: running it reports which."""
    parser = subparsers.add_parser(name, help=f"{summary} (needs an extra)", add_help=True)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def handler(_args: argparse.Namespace) -> int:
        raise missing

    parser.set_defaults(handler=handler)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _explain(error: ChatKitKitError, where: str) -> str:
    """One line: what failed and what to do."""
    cause = error.__cause__
    cause = getattr(cause, "orig", None) or cause  # SQLAlchemy wraps the driver's error
    detail = _one_line(cause) if cause is not None else _one_line(error)
    if isinstance(error, DatabaseUnavailableError):
        return (
            f"cannot reach the database{where}: {detail}; check that the server is running "
            "and that the host and port in the URL are right"
        )
    if isinstance(error, DatabaseConfigurationError) and not isinstance(error, SchemaVersionError):
        return (
            f"the database refused the connection or the statement{where}: {detail}; check the "
            "database name, the role and its password, and the role's grants"
        )
    return _one_line(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `chatkit-kit` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    handler: Handler = args.handler
    prog = f"chatkit-kit {args.command}"
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if debug:
            raise
        if isinstance(error, UsageError):
            print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
            return EXIT_USAGE
        url = getattr(args, "database_url", None)
        where = f" (database {redact_database_url(url)})" if isinstance(url, str) else ""
        if isinstance(error, ChatKitKitError):
            print(f"{prog}: {_explain(error, where)}", file=sys.stderr)
            return EXIT_FAILURE
        print(
            f"{prog}: unexpected {type(error).__name__}{where}: {_one_line(error)}; "
            "run again with --debug for the traceback",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
