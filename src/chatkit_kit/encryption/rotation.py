"""Key rotation: the key-encryption key (rewrap data keys only) and an owner's data key.

`rotate_kek` rewraps every stored data key not yet under the provider's current KEK: a few
bytes per owner, no payload is touched. `rotate_data_key` gives one owner a new data key
version and re-encrypts their rows in bounded batches while the app keeps serving: each row is
replaced only if unchanged since it was read (a write of the app in between wins, and is
already sealed under a current key once every process's cache has expired). Both are
idempotent: run them again after an interruption and they carry on (rows already done are
recognised by their envelope header, without decrypting them).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatkit.types import Attachment

from ..errors import DecryptionError, KeyProviderError
from ..stores import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    PayloadKind,
    StoredPayload,
    WrappedDataKey,
    check_owner,
)
from .envelope import EnvelopeCodec, _Scope, header_of, is_envelope, scope
from .store import EncryptedStore

if TYPE_CHECKING:
    from .blobs import EncryptedBlobStorage

MAX_PASSES = 5
"""Scans of an owner's rows `rotate_data_key` makes before it reports rows still left."""
_KINDS: tuple[PayloadKind, ...] = ("thread", "item", "attachment")


@dataclass
class RewriteReport:
    """What a rotation or migration did: rows `scanned`, `rewritten`, `remaining` (rows still
    under an old key or in clear at the end, and blobs that could not be rewrapped: run it
    again), `rewrapped` data keys and `blobs_rewrapped` attachment blobs."""

    scanned: int = 0
    rewritten: int = 0
    remaining: int = 0
    rewrapped: int = 0
    blobs_rewrapped: int = 0


Progress = Callable[[RewriteReport], None]


def check_batch(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}, got {batch_size}")
    return batch_size


async def rotate_kek(
    store: EncryptedStore[object],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    blobs: EncryptedBlobStorage | None = None,
) -> RewriteReport:
    """Rewrap every data key under the provider's current KEK; payloads stay as they are.

    Keep the old KEK in the provider until this returns: it unwraps the keys being rewrapped.
    Attachment blobs of an `EncryptedBlobStorage` are sealed by the owners' data keys and need
    nothing, except blobs of its first format (their keys wrapped by the KEK itself): with
    `blobs=` they are upgraded to their owner's data key as well (`rewrap_blobs`).
    """
    report = await _rotate_kek(store, batch_size, progress)
    if blobs is not None:
        await rewrap_blobs(
            store, blobs, legacy_only=True, batch_size=batch_size, progress=progress, report=report
        )
    return report


async def _rotate_kek(
    store: EncryptedStore[object], batch_size: int, progress: Progress | None
) -> RewriteReport:
    batch_size = check_batch(batch_size)
    report = RewriteReport()
    table, provider = store.key_table, store.provider
    seen: set[tuple[str, int, str]] = set()
    while True:
        current = provider.current_kek_id
        batch = await table.data_keys_not_under(current, batch_size)
        fresh = [k for k in batch if (k.owner, k.version, k.kek_id) not in seen]
        if not fresh:
            if batch:
                raise KeyProviderError(
                    f"{len(batch)} data keys stay wrapped under another KEK than {current!r}: "
                    "the provider wraps new keys under another id than its current_kek_id"
                )
            return report
        for key in fresh:
            seen.add((key.owner, key.version, key.kek_id))
            raw = await provider.unwrap(key.kek_id, base64.b64decode(key.wrapped), key.owner)
            kek_id, wrapped = await provider.wrap(raw, key.owner)
            text = base64.b64encode(wrapped).decode("ascii")
            await table.rewrap_data_key(WrappedDataKey(key.owner, key.version, kek_id, text), key)
            report.rewrapped += 1
        if progress is not None:
            progress(report)


async def _owner_rows(
    store: EncryptedStore[object], owner: str | None, batch_size: int
) -> list[tuple[PayloadKind, StoredPayload | None]]:
    """The start cursor of each kind: at `owner`'s first row, or at the first row of all."""
    del store, batch_size
    starts: list[tuple[PayloadKind, StoredPayload | None]] = []
    for kind in _KINDS:
        starts.append((kind, None if owner is None else StoredPayload(kind, owner, "", "", "")))
    return starts


async def rewrite_rows(
    store: EncryptedStore[object],
    owner: str | None,
    needs_rewrite: Callable[[StoredPayload], bool],
    batch_size: int,
    progress: Progress | None,
    report: RewriteReport,
) -> int:
    """One scan of `owner`'s rows (or everyone's): reseal those `needs_rewrite` accepts under
    their owner's current data key. Returns how many still needed it (changed meanwhile)."""
    left = 0
    for kind, after in await _owner_rows(store, owner, batch_size):
        while True:
            rows = await store.key_table.payload_rows(kind, after, batch_size)
            if owner is not None:
                rows = [row for row in rows if row.owner == owner]
            if not rows:
                break
            for row in rows:
                report.scanned += 1
                if not needs_rewrite(row):
                    continue
                keys = await store._write_keys(row.owner)
                if await store.reseal_row(row, keys):
                    report.rewritten += 1
                else:
                    left += 1
            after = rows[-1]
            if progress is not None:
                progress(report)
            if len(rows) < batch_size:
                break
    return left


async def rotate_data_key(
    store: EncryptedStore[object],
    owner: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    retire: bool = False,
    resume: bool = False,
    blobs: EncryptedBlobStorage | None = None,
) -> RewriteReport:
    """Give `owner` a new data key version and re-encrypt their rows under it, in batches.

    `resume=True` carries on an interrupted rotation: no new version, only the rows not yet
    under the newest one are re-encrypted. With `retire=True` the old versions are deleted once
    a scan finds no row left under them.
    Only retire after every process has reloaded the owner's keys (the `DataKeyCache` ttl):
    a process still holding the old version in its cache writes rows under it until then.
    With attachment bytes in an `EncryptedBlobStorage`, pass it as `blobs=`: the owner's blob
    keys are resealed under the new version too (`rewrap_blobs`), and a blob left under an old
    one keeps the old versions from being retired. Without it, `retire=True` makes the owner's
    encrypted blobs unreadable.
    """
    check_owner(owner)
    batch_size = check_batch(batch_size)
    before = await store.load_keys(owner, refresh=True)
    keys = (
        before if resume and before.current is not None else await store.new_data_key(owner, before)
    )
    current = keys.current
    report = RewriteReport()

    def stale(row: StoredPayload) -> bool:
        header = header_of(row.payload)
        return header is None or header.version != current

    for _ in range(MAX_PASSES):
        left = await rewrite_rows(store, owner, stale, batch_size, progress, report)
        if not left:
            break
    report.remaining = await _count(store, owner, stale, batch_size)
    if blobs is not None:
        await rewrap_blobs(
            store, blobs, owner=owner, batch_size=batch_size, progress=progress, report=report
        )
    if retire and not report.remaining:
        for version in sorted(keys.ciphers):
            if version != current:
                await store.key_table.delete_data_keys(owner, version)
        store.cache.discard(owner)
    return report


async def _count(
    store: EncryptedStore[object],
    owner: str | None,
    predicate: Callable[[StoredPayload], bool],
    batch_size: int,
) -> int:
    found = 0
    for kind, after in await _owner_rows(store, owner, batch_size):
        while True:
            rows = await store.key_table.payload_rows(kind, after, batch_size)
            mine = [row for row in rows if owner is None or row.owner == owner]
            found += sum(1 for row in mine if predicate(row))
            if len(mine) < len(rows) or len(rows) < batch_size:
                break
            after = rows[-1]
    return found


def _blob_key_of(attachment: Attachment) -> str | None:
    """The object key an attachment backend recorded in the attachment's metadata."""
    from ..attachments import METADATA_KEY

    record = (attachment.metadata or {}).get(METADATA_KEY)
    key = record.get("key") if isinstance(record, dict) else None
    return key if isinstance(key, str) else None


async def rewrap_blobs(
    store: EncryptedStore[object],
    blobs: EncryptedBlobStorage,
    *,
    owner: str | None = None,
    legacy_only: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    report: RewriteReport | None = None,
) -> RewriteReport:
    """Seal the blob key of every attachment of `owner` (or of everyone) under its owner's
    current data key: blobs of the first format (KEK-wrapped, not crypto-shredded) are upgraded,
    blobs under an older data-key version are resealed (with `legacy_only`, only the former).
    Only headers change (the frames are copied as they are); each attachment's blob is found
    through its record in the store. Blobs that cannot be read (a missing KEK, a blob that is
    not encrypted) count in `remaining`; shredded owners' rows and missing blobs are skipped.
    """
    batch_size = check_batch(batch_size)
    report = report if report is not None else RewriteReport()
    if owner is not None:
        check_owner(owner)
    after: StoredPayload | None = (
        None if owner is None else StoredPayload("attachment", owner, "", "", "")
    )
    while True:
        rows = await store.key_table.payload_rows("attachment", after, batch_size)
        mine = [row for row in rows if owner is None or row.owner == owner]
        for row in mine:
            report.scanned += 1
            keys = await store.load_keys(row.owner)
            if keys.current is None:
                continue  # shredded (or never encrypted): nothing of theirs to rewrap
            codec = store.codec if is_envelope(row.payload) else EnvelopeCodec(accept_clear=True)
            try:
                with scope(_Scope(row.owner, keys={row.owner: keys})):
                    attachment = codec.decode_attachment(row.payload)
            except DecryptionError:
                report.remaining += 1
                continue
            key = _blob_key_of(attachment)
            if key is None:
                continue
            try:
                if await blobs.rewrap(key, row.owner, legacy_only=legacy_only):
                    report.blobs_rewrapped += 1
            except (DecryptionError, KeyProviderError):
                report.remaining += 1
        if progress is not None:
            progress(report)
        if len(mine) < len(rows) or len(rows) < batch_size:
            return report
        after = rows[-1]
