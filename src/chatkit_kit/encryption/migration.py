"""Live migration: encrypt the rows a store wrote before it was encrypted.

Switch the app to `EnvelopeCodec(accept_clear=True)` inside an `EncryptedStore` first: new and
rewritten rows are sealed, old clear rows still read. Then `encrypt_existing` (or
`chatkit-kit encryption encrypt-existing`) seals the clear rows in bounded batches, each row
replaced only if unchanged since it was read, creating each owner's data key as it goes. Once it
reports nothing remaining, drop `accept_clear`.
"""

from __future__ import annotations

from ..stores import DEFAULT_BATCH_SIZE, StoredPayload
from .envelope import is_envelope
from .rotation import MAX_PASSES, Progress, RewriteReport, _count, check_batch, rewrite_rows
from .store import EncryptedStore


def _clear(row: StoredPayload) -> bool:
    return not is_envelope(row.payload)


async def encrypt_existing(
    store: EncryptedStore[object],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> RewriteReport:
    """Seal every clear payload of every owner; `remaining` counts clear rows left at the end."""
    batch_size = check_batch(batch_size)
    report = RewriteReport()
    for _ in range(MAX_PASSES):
        if not await rewrite_rows(store, None, _clear, batch_size, progress, report):
            break
    report.remaining = await _count(store, None, _clear, batch_size)
    return report
