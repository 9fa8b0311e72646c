"""`chatkit-kit encryption ...`: keyrings, key rotation, encrypting existing rows, erasure.

    chatkit-kit encryption new-keyring KEK_ID [--from FILE]        print a keyring (JSON)
    chatkit-kit encryption rotate-kek DATABASE_URL                  rewrap every data key
    chatkit-kit encryption rotate-data-key DATABASE_URL --owner O   re-encrypt one owner's rows
    (both take --blobs-dir DIR: the EncryptedBlobStorage directory of attachment bytes)
    chatkit-kit encryption encrypt-existing DATABASE_URL            seal the clear rows
    chatkit-kit encryption erase-owner DATABASE_URL --owner O       shred the key, delete rows

Every database subcommand works in bounded batches and can be interrupted and run again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..stores import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE
from ._options import (
    UsageError,
    add_database_arguments,
    add_key_provider_arguments,
    database_options,
    key_provider,
    open_store,
)


def _report(verb: str, report: Any) -> str:
    return (
        f"{verb}: {report.scanned} rows scanned, {report.rewritten} rewritten, "
        f"{report.remaining} remaining, {report.rewrapped} data keys rewrapped, "
        f"{report.blobs_rewrapped} blobs rewrapped"
    )


def _blobs(args: argparse.Namespace, store: Any) -> Any:
    """The `EncryptedBlobStorage` of `--blobs-dir`, or None."""
    if getattr(args, "blobs_dir", None) is None:
        return None
    from ..attachments import LocalBlobStorage
    from ..encryption import EncryptedBlobStorage

    return EncryptedBlobStorage(LocalBlobStorage(args.blobs_dir), store)


async def _with_encrypted(args: argparse.Namespace, run: Any) -> int:
    from ..encryption import EncryptedStore, EnvelopeCodec

    provider = key_provider(args)
    inner = await open_store(database_options(args), codec=EnvelopeCodec(accept_clear=True))
    async with inner:
        result: int = await run(EncryptedStore(inner, provider))
        return result


def _start(args: argparse.Namespace, run: Any) -> int:
    database_options(args)  # usage errors before anything connects
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise UsageError(f"--batch-size must be 1 to {MAX_BATCH_SIZE}")
    key_provider(args)
    return asyncio.run(_with_encrypted(args, run))


def _run_new_keyring(args: argparse.Namespace) -> int:
    from ..encryption import LocalKeyProvider

    previous = None if args.previous is None else Path(args.previous).read_text()
    try:
        sys.stdout.write(LocalKeyProvider.new_keyring(args.kek_id, previous) + "\n")
    except (ValueError, KeyError) as error:
        raise UsageError(str(error)) from None
    return 0


def _run_rotate_kek(args: argparse.Namespace) -> int:
    from ..encryption import rotate_kek

    async def run(store: Any) -> int:
        report = await rotate_kek(store, batch_size=args.batch_size, blobs=_blobs(args, store))
        print(_report(f"rewrapped under {store.provider.current_kek_id!r}", report))
        return 0

    return _start(args, run)


def _run_rotate_data_key(args: argparse.Namespace) -> int:
    from ..encryption import rotate_data_key

    async def run(store: Any) -> int:
        report = await rotate_data_key(
            store,
            args.owner,
            batch_size=args.batch_size,
            retire=args.retire,
            resume=args.resume,
            blobs=_blobs(args, store),
        )
        print(_report(f"rotated the data key of owner {args.owner!r}", report))
        return 0 if report.remaining == 0 else 1

    return _start(args, run)


def _run_encrypt_existing(args: argparse.Namespace) -> int:
    from ..encryption import encrypt_existing

    async def run(store: Any) -> int:
        report = await encrypt_existing(store, batch_size=args.batch_size)
        print(_report("encrypted existing rows", report))
        return 0 if report.remaining == 0 else 1

    return _start(args, run)


def _run_erase_owner(args: argparse.Namespace) -> int:
    async def run(store: Any) -> int:
        count: int = await store.erase_owner(args.owner, batch_size=args.batch_size)
        print(f"destroyed the data key of owner {args.owner!r} and erased {count} threads")
        return 0

    return _start(args, run)


def _database_command(subparsers: Any, name: str, common: Any, help: str, handler: Any) -> Any:
    parser = subparsers.add_parser(name, parents=[common], help=help, description=help)
    add_database_arguments(parser)
    add_key_provider_arguments(parser)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per batch (default: {DEFAULT_BATCH_SIZE})",
    )
    parser.set_defaults(handler=handler)
    return parser


def _blobs_argument(parser: Any, what: str) -> None:
    parser.add_argument(
        "--blobs-dir",
        default=None,
        metavar="DIR",
        help=f"the directory of an EncryptedBlobStorage(LocalBlobStorage(DIR)): {what}",
    )


def add_encryption(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register `chatkit-kit encryption` and its subcommands."""
    parser = subparsers.add_parser(
        "encryption",
        parents=[common],
        help="encryption at rest: keyrings, key rotation, encrypting existing rows",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="encryption_command", required=True, metavar="COMMAND")
    keyring = commands.add_parser(
        "new-keyring",
        parents=[common],
        help="print a LocalKeyProvider keyring with a new random key made current",
    )
    keyring.add_argument("kek_id", metavar="KEK_ID", help="the new key's id, e.g. 2026-12")
    keyring.add_argument(
        "--from", dest="previous", default=None, help="keep the keys of this keyring file"
    )
    keyring.set_defaults(handler=_run_new_keyring)
    kek = _database_command(
        commands,
        "rotate-kek",
        common,
        "rewrap every data key under the provider's current key-encryption key",
        _run_rotate_kek,
    )
    _blobs_argument(kek, "also upgrade blobs of the first format (KEK-wrapped) there")
    rotate = _database_command(
        commands,
        "rotate-data-key",
        common,
        "give one owner a new data key and re-encrypt their rows under it",
        _run_rotate_data_key,
    )
    rotate.add_argument("--owner", required=True, help="the owner key")
    _blobs_argument(rotate, "also reseal the owner's blob keys there (needed with --retire)")
    rotate.add_argument(
        "--resume",
        action="store_true",
        help="carry on an interrupted rotation (no new key version)",
    )
    rotate.add_argument(
        "--retire",
        action="store_true",
        help="delete the old data key versions once no row uses them (only after every app "
        "process has reloaded its keys: the cache ttl)",
    )
    _database_command(
        commands,
        "encrypt-existing",
        common,
        "encrypt every row still stored in clear (live migration), in batches",
        _run_encrypt_existing,
    )
    erase = _database_command(
        commands,
        "erase-owner",
        common,
        "destroy one owner's data key (crypto-shredding), then delete their rows",
        _run_erase_owner,
    )
    erase.add_argument("--owner", required=True, help="the owner key")
