"""`chatkit-kit conformance MODULE:FACTORY`: run the conformance suite on any store.

Prints the rule table (or JSON with --json). Exit code 0 when no rule failed, 1 when one did,
2 for usage errors (a factory that cannot be imported or called, a missing extra).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any


class _UsageError(Exception):
    pass


def _load(spec: str, what: str) -> Callable[..., Any]:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise _UsageError(f"{what} must look like MODULE:NAME (e.g. myapp.stores:make_store)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules of the current project
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise _UsageError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _UsageError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise _UsageError(f"{spec} is a {type(target).__name__}, not a callable")
    return target  # type: ignore[no-any-return]


async def _close(store: Any) -> None:
    """Close the store after each rule if it has an (async or sync) `close()`."""
    close = getattr(store, "close", None)
    if callable(close):
        done = close()
        if inspect.isawaitable(done):
            await done


def run(args: argparse.Namespace) -> int:
    """Run the suite as the arguments say; return the exit code."""
    try:
        factory = _load(args.factory, "FACTORY")
        make_context = _load(args.context, "--context") if args.context else None
        reopen = _load(args.reopen, "--reopen") if args.reopen else None
        from .._optional import require

        require("hypothesis", "testing")
        from hypothesis.configuration import set_hypothesis_home_dir

        from .conformance import run_conformance

        # Hypothesis keeps its files (example database, constants cache) in ./.hypothesis by
        # default: the CLI writes nothing to the current directory unless --hypothesis-dir.
        scratch = None if args.hypothesis_dir else tempfile.mkdtemp(prefix="chatkit-kit-hyp-")
        set_hypothesis_home_dir(args.hypothesis_dir or scratch)
        try:
            report = _run(args, factory, make_context, reopen, run_conformance)
        finally:
            set_hypothesis_home_dir(None)  # back to hypothesis's default
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    except (_UsageError, ImportError, ValueError) as exc:
        print(f"chatkit-kit conformance: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report)
    return 0 if report.ok else 1


def _run(
    args: argparse.Namespace,
    factory: Callable[..., Any],
    make_context: Callable[..., Any] | None,
    reopen: Callable[..., Any] | None,
    run_conformance: Callable[..., Any],
) -> Any:
    return run_conformance(
        factory,
        make_context=make_context,
        teardown_store=_close,
        profile=args.profile,
        strict=args.strict,
        rules=set(args.rule) if args.rule else None,
        reopen=reopen,
        items_written_elsewhere=args.items_written_elsewhere,
    )


def add_conformance(subparsers: Any) -> None:
    """Register the `conformance` subcommand."""
    parser = subparsers.add_parser(
        "conformance",
        help="run the store conformance suite on a store",
        description="Run chatkit-kit's store conformance suite on the store FACTORY builds and "
        "print one line per rule. Exit code 1 when a rule fails, 2 for usage errors.",
    )
    parser.add_argument(
        "factory",
        metavar="MODULE:FACTORY",
        help="a callable (sync or async) returning a fresh store, e.g. myapp.store:make_store; "
        "called once per rule; the store's close() is called after each rule if it has one",
    )
    parser.add_argument(
        "--strict", action="store_true", help="also run the strict tier (chatkit-kit's policies)"
    )
    parser.add_argument(
        "--profile", choices=("ci", "deep"), default="ci", help="example counts (default: ci)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--context",
        metavar="MODULE:CALLABLE",
        default=None,
        help="builds the request context from a user id (default: an object with .user_id)",
    )
    parser.add_argument(
        "--rule", action="append", metavar="NAME", help="run only this rule (repeatable)"
    )
    parser.add_argument(
        "--reopen",
        metavar="MODULE:CALLABLE",
        default=None,
        help="returns a new store on the same location as the store it is given (enables "
        "the reopen rules)",
    )
    parser.add_argument(
        "--hypothesis-dir",
        metavar="DIR",
        default=None,
        help="keep hypothesis's files (example database) in DIR; by default they go to a "
        "temporary directory and nothing is written to the current directory",
    )
    parser.add_argument(
        "--items-written-elsewhere",
        action="store_true",
        help="a projection store: items are written by another component, not add_thread_item",
    )
    parser.set_defaults(handler=run)
