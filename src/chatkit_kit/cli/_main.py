"""The `chatkit-kit` command line: `migrate`, `prune`, `erase-owner`, `encryption`, `demo` and
`conformance`.

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

from ..errors import (
    ChatKitKitError,
    DatabaseConfigurationError,
    DatabaseUnavailableError,
    MissingDependencyError,
    SchemaVersionError,
)
from ..stores import migration_script, redact_database_url
from ._conformance import add_conformance
from ._encryption import add_encryption
from ._options import (
    EXIT_FAILURE,
    EXIT_USAGE,
    DatabaseOptions,
    UsageError,
    add_database_arguments,
    database_options,
    open_store,
)
from ._retention import add_retention

Handler = Callable[[argparse.Namespace], int]


async def _migrate(options: DatabaseOptions, target: int | None) -> int:
    store = await open_store(options)
    async with store:
        before = await store.schema_version()
        after: int = await store.migrate(target=target)
    if before == after:
        print(f"chatkit-kit schema is up to date (version {after})")
    else:
        print(f"chatkit-kit schema migrated from version {before} to {after}")
    return 0


def _run_migrate(args: argparse.Namespace) -> int:
    options = database_options(args)
    try:  # also checks --target; connects to nothing
        script = migration_script(
            options.url,
            schema=options.schema,
            table_prefix=options.table_prefix,
            from_version=args.from_version,
            target=args.target,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.sql:
        sys.stdout.write(script)
        return 0
    return asyncio.run(_migrate(options, args.target))


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
    add_retention(subparsers, common)
    add_encryption(subparsers, common)
    try:
        from ..demo.cli import add_demo

        add_demo(subparsers, common)
    except MissingDependencyError as missing:
        # `migrate` must work with only the extra its URL needs; `demo` then says what it needs.
        if "demo" not in subparsers.choices:
            _add_unavailable(subparsers, "demo", "run the demo ChatKit backend", missing)
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
