"""`chatkit-kit prune` and `chatkit-kit erase-owner`: retention and erasure from the shell."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from datetime import timedelta
from typing import Any

from ..stores import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE
from ._options import UsageError, add_database_arguments, database_options, open_store

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE = re.compile(r"(\d+)([smhdw])")


def parse_age(text: str) -> timedelta:
    """`90d`, `12h`, `2w`, `1d12h`, ... as a timedelta (s, m, h, d, w)."""
    compact = text.strip().lower()
    parts = _AGE.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise argparse.ArgumentTypeError(
            f"invalid age {text!r}: use a number and a unit, e.g. 90d, 12h, 2w or 1d12h "
            "(units: s, m, h, d, w)"
        )
    age = timedelta()
    for number, unit in parts:
        age += timedelta(**{_UNITS[unit]: int(number)})
    return age


class _Progress:
    """Prints `<verb> N threads` to stderr at most once per `interval` seconds."""

    interval = 1.0

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            print(f"... {self.verb} {done} threads so far", file=sys.stderr, flush=True)


async def _with_store(args: argparse.Namespace, run: Any) -> int:
    store = await open_store(database_options(args))  # the same URL handling as `migrate`
    async with store:
        result: int = await run(store)
        return result


def _run(command: str, args: argparse.Namespace, run: Any) -> int:
    database_options(args)  # usage errors before anything connects
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise UsageError(f"--batch-size must be 1 to {MAX_BATCH_SIZE}")
    return asyncio.run(_with_store(args, run))


def _run_prune(args: argparse.Namespace) -> int:
    async def run(store: Any) -> int:
        count: int = await store.prune(
            args.older_than,
            args.owner,
            batch_size=args.batch_size,
            dry_run=args.dry_run,
            progress=_Progress("pruned"),
        )
        if args.dry_run:
            print(f"would prune {count} threads with no activity in the last {args.age}")
        else:
            print(f"pruned {count} threads with no activity in the last {args.age}")
        return 0

    try:
        args.older_than = parse_age(args.age)
    except argparse.ArgumentTypeError as error:
        raise UsageError(str(error)) from None
    return _run("prune", args, run)


def _run_erase_owner(args: argparse.Namespace) -> int:
    async def run(store: Any) -> int:
        if await store.load_data_keys(args.owner):
            # Encrypted rows: the plain erasure could not read them, and would leave the data
            # key (and so every backup's copy readable) behind.
            raise UsageError(
                f"owner {args.owner!r} has encrypted data: run `chatkit-kit encryption "
                "erase-owner` (with the key provider's options), which destroys the owner's "
                "data key first"
            )
        count: int = await store.erase_owner(
            args.owner, batch_size=args.batch_size, progress=_Progress("erased")
        )
        print(f"erased owner {args.owner!r}: {count} threads with their items and attachments")
        return 0

    return _run("erase-owner", args, run)


def _common(parser: argparse.ArgumentParser) -> None:
    add_database_arguments(parser)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per delete statement (default: {DEFAULT_BATCH_SIZE})",
    )


def add_retention(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register `prune` and `erase-owner` on the `chatkit-kit` parser."""
    prune = subparsers.add_parser(
        "prune",
        parents=[common],
        help="delete threads with no activity for a given time",
        description="Delete threads (with their items and attachment records) whose newest "
        "created_at, of the thread and its items, is older than --older-than. Runs in batches; "
        "safe to interrupt and run again. Attachment bytes in S3 or on disk are not reachable "
        "from here: prune from your app with store.prune(..., attachments=backend) to delete "
        "them too.",
    )
    _common(prune)
    prune.add_argument(
        "--older-than",
        dest="age",
        required=True,
        metavar="AGE",
        help="e.g. 90d, 12h, 2w, 1d12h",
    )
    prune.add_argument("--owner", default=None, help="only this owner key's threads")
    prune.add_argument(
        "--dry-run", action="store_true", help="count the threads that would go; delete nothing"
    )
    prune.set_defaults(handler=_run_prune)

    erase = subparsers.add_parser(
        "erase-owner",
        parents=[common],
        help="delete every thread, item and attachment record of one owner",
        description="Delete all data of one owner key (the user id, unless your store maps "
        "contexts to owners differently). Runs in batches; safe to interrupt and run again.",
    )
    _common(erase)
    erase.add_argument("owner", metavar="OWNER", help="the owner key to erase")
    erase.set_defaults(handler=_run_erase_owner)
