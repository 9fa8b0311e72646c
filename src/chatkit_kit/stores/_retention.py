"""Retention and erasure: `erase_owner` and `prune` for every chatkit-kit store.

Both delete in bounded steps, each its own short statement, so concurrent writers to other
threads keep working: items and threads in batches of `batch_size` rows, attachment rows one
per statement after their batch's bytes are erased. Both are idempotent and resumable (run
again after an interruption and they carry on where they stopped). Attachment bytes go through
the attachment backend first (`AttachmentBytesEraser`), then the attachment rows, then items,
then thread rows, so an interrupted run never leaves a record pointing at deleted data it can
no longer find. The SQL stores run them in `stores.sql.retention`.

A thread's latest activity is the newest `created_at` among the thread and its items (the
times ChatKit shows), so imported history is pruned by its own dates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

from chatkit.types import Attachment

from ._rules import MAX_OWNER_BYTES, _fits, sort_key

DEFAULT_BATCH_SIZE = 500
"""Rows per delete statement (and threads per prune batch)."""
MAX_BATCH_SIZE = 10_000

Progress = Callable[[int], None]
"""Called after every batch with the number of threads deleted so far."""


@runtime_checkable
class RetentionStore(Protocol):
    """A store that can erase an owner's data and prune old threads (every chatkit-kit store)."""

    async def erase_owner(
        self,
        owner: str,
        *,
        batch_size: int = ...,
        progress: Progress | None = ...,
        attachments: AttachmentBytesEraser | None = ...,
    ) -> int:
        """Delete every thread, item and attachment of `owner`; return the threads deleted."""
        ...

    async def prune(
        self,
        older_than: timedelta,
        owner: str | None = ...,
        *,
        batch_size: int = ...,
        dry_run: bool = ...,
        progress: Progress | None = ...,
        attachments: AttachmentBytesEraser | None = ...,
    ) -> int:
        """Delete threads whose latest activity is older than `older_than`; return how many."""
        ...


@runtime_checkable
class AttachmentBytesEraser(Protocol):
    """An attachment backend that deletes stored bytes when a store erases attachment records.

    `erase_owner` and `prune` call it (the backend passed as `attachments=`) with each batch of
    attachment rows, before the rows are deleted. It must be idempotent: bytes already gone are
    not an error.
    """

    async def erase_attachment_bytes(self, owner: str, attachments: Sequence[Attachment]) -> None:
        """Delete the stored bytes of `owner`'s `attachments`."""
        ...


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}, got {batch_size}")
    return batch_size


def check_owner(owner: str) -> str:
    """`owner` as an owner key argument: a non-empty str of at most MAX_OWNER_BYTES."""
    if not isinstance(owner, str):
        raise TypeError(f"owner must be the owner key string, got {type(owner).__name__}")
    if not owner or not _fits(owner, MAX_OWNER_BYTES):
        raise ValueError(
            f"owner must be a non-empty owner key of at most {MAX_OWNER_BYTES} bytes of UTF-8, "
            f"got {owner[:40]!r}"
        )
    return owner


def cutoff_key(older_than: timedelta, now: datetime | None = None) -> int:
    """The sort key (UTC microseconds) before which activity counts as older than `older_than`."""
    if not isinstance(older_than, timedelta):
        raise TypeError(f"older_than must be a datetime.timedelta, got {older_than!r}")
    if older_than < timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    key: int = sort_key((now or datetime.now(timezone.utc)) - older_than)
    return key


async def erase_bytes(
    eraser: AttachmentBytesEraser | None, owner: str, attachments: Sequence[Attachment]
) -> None:
    """Hand `attachments` to the attachment backend given as `attachments=`, if any."""
    if attachments and eraser is not None:
        await eraser.erase_attachment_bytes(owner, attachments)
