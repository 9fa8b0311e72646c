"""Retention and erasure: `erase_owner` and `prune` for every chatkit-kit store.

Both delete in bounded batches, each its own short statement, so concurrent writers to other
threads keep working; both are idempotent and resumable (run again after an interruption and
they carry on where they stopped). Attachment bytes go through the attachment backend first
(`AttachmentBytesEraser`), then the attachment rows, then items, then thread rows, so an
interrupted run never leaves a record pointing at deleted data it can no longer find.

A thread's latest activity is the newest `created_at` among the thread and its items (the
times ChatKit shows), so imported history is pruned by its own dates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from chatkit.types import Attachment

from . import _codec
from ._rules import MAX_OWNER_BYTES, _fits, sort_key

if TYPE_CHECKING:
    from ._sqlstore import SQLStoreBase

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


# SQL: every statement touches at most :limit rows (PostgreSQL and SQLite alike).

OWNER_ATTACHMENTS = (
    "SELECT payload FROM {attachments} WHERE owner = :owner ORDER BY id LIMIT :limit"
)
DELETE_OWNER_ITEMS = (
    "DELETE FROM {items} WHERE (owner, thread_id, id) IN "
    "(SELECT owner, thread_id, id FROM {items} WHERE owner = :owner LIMIT :limit) RETURNING 1"
)
DELETE_OWNER_THREADS = (
    "DELETE FROM {threads} WHERE (owner, id) IN "
    "(SELECT owner, id FROM {threads} WHERE owner = :owner LIMIT :limit) RETURNING 1"
)
_STALE_THREADS = (
    "FROM {threads} t WHERE {owner_filter}t.sort_key < :cutoff AND NOT EXISTS "
    "(SELECT 1 FROM {items} i WHERE i.owner = t.owner AND i.thread_id = t.id "
    "AND i.sort_key >= :cutoff)"
)
DELETE_STALE_ITEMS = (
    "DELETE FROM {items} WHERE (owner, thread_id, id) IN "
    "(SELECT owner, thread_id, id FROM {items} WHERE owner = :owner AND thread_id = :thread_id "
    "AND sort_key < :cutoff LIMIT :limit) RETURNING 1"
)
# PostgreSQL, before DELETE_EMPTY_THREAD in one transaction: wait for item writes in flight
# (each holds the thread row FOR KEY SHARE until it commits), so the delete's NOT EXISTS, a new
# statement with a new snapshot under READ COMMITTED, sees their items. Without it the delete
# waits for the lock and then deletes the thread without re-checking: an orphan item.
LOCK_THREAD_POSTGRESQL = (
    "SELECT 1 FROM {threads} WHERE owner = :owner AND id = :thread_id FOR UPDATE"
)
# Only once no item is left: a thread that got a new item meanwhile stays (with that item).
DELETE_EMPTY_THREAD = (
    "DELETE FROM {threads} WHERE owner = :owner AND id = :thread_id AND NOT EXISTS "
    "(SELECT 1 FROM {items} i WHERE i.owner = :owner AND i.thread_id = :thread_id) RETURNING 1"
)


# MySQL/MariaDB: no LIMIT in IN subqueries and (MySQL) no RETURNING: count, then DELETE ... LIMIT.
_MYSQL_COUNT = "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT :limit) AS batch"
_MYSQL_DELETE = "DELETE FROM {table} WHERE {where} LIMIT :limit"
_OWNER_ITEMS = ("{items}", "owner = :owner")
_OWNER_THREADS = ("{threads}", "owner = :owner")
_STALE_ITEMS = ("{items}", "owner = :owner AND thread_id = :thread_id AND sort_key < :cutoff")


async def _delete_batch(
    store: SQLStoreBase[Any], shared: str, mysql: tuple[str, str], params: dict[str, Any]
) -> int:
    """Delete up to :limit rows; return how many went."""
    sql = store._sql.sql
    if store._names.dialect != "mysql":
        return len(await store._fetch(sql(shared), params))
    table, where = mysql
    count = await store._fetch_value(
        sql(_MYSQL_COUNT.replace("{table}", table).replace("{where}", where)), params
    )
    if count:
        await store._execute(
            (sql(_MYSQL_DELETE.replace("{table}", table).replace("{where}", where)),), params
        )
    return int(count or 0)


def stale_threads(owner: bool, mysql: bool = False) -> str:
    """Up to :limit (owner, id) of threads whose latest activity is before :cutoff."""
    filt = "t.owner = :owner AND " if owner else ""
    columns = (
        "CONVERT(t.owner USING utf8mb4), CONVERT(t.id USING utf8mb4) "
        if mysql
        else "t.owner, t.id "
    )
    return (
        "SELECT "
        + columns
        + _STALE_THREADS.replace("{owner_filter}", filt)
        + " ORDER BY t.sort_key, t.seq LIMIT :limit"
    )


def count_stale_threads(owner: bool) -> str:
    filt = "t.owner = :owner AND " if owner else ""
    return "SELECT COUNT(*) " + _STALE_THREADS.replace("{owner_filter}", filt)


async def sql_erase_owner(
    store: SQLStoreBase[Any],
    owner: str,
    batch_size: int,
    progress: Progress | None,
    eraser: AttachmentBytesEraser | None = None,
) -> int:
    sql = store._sql.sql
    params: dict[str, Any] = {"owner": owner, "limit": batch_size}
    while True:  # attachments: bytes first, then the rows
        rows = await store._fetch(sql(OWNER_ATTACHMENTS), params)
        if not rows:
            break
        attachments = [_codec.decode_attachment(row[0]) for row in rows]
        await erase_bytes(eraser, owner, attachments)
        for attachment in attachments:
            await store._execute(
                (store._sql.delete_attachment,), {"owner": owner, "id": attachment.id}
            )
    while await _delete_batch(store, DELETE_OWNER_ITEMS, _OWNER_ITEMS, params) == batch_size:
        pass
    threads = 0
    while True:
        deleted = await _delete_batch(store, DELETE_OWNER_THREADS, _OWNER_THREADS, params)
        threads += deleted
        if progress is not None and deleted:
            progress(threads)
        if deleted < batch_size:
            return threads


async def sql_prune(
    store: SQLStoreBase[Any],
    cutoff: int,
    owner: str | None,
    batch_size: int,
    dry_run: bool,
    progress: Progress | None,
    eraser: AttachmentBytesEraser | None = None,
) -> int:
    sql = store._sql.sql
    params: dict[str, Any] = {"cutoff": cutoff, "limit": batch_size}
    if owner is not None:
        params["owner"] = owner
    if dry_run:
        count = await store._fetch_value(sql(count_stale_threads(owner is not None)), params)
        return int(count or 0)
    pruned = 0
    while True:
        mysql = store._names.dialect == "mysql"
        candidates = await store._fetch(sql(stale_threads(owner is not None, mysql)), params)
        if not candidates:
            return pruned
        batch = 0
        for row_owner, thread_id in candidates:
            batch += await _prune_thread(store, row_owner, thread_id, cutoff, batch_size, eraser)
        pruned += batch
        if progress is not None and batch:
            progress(pruned)
        if batch == 0:  # every candidate changed under us (new items): stop, nothing is stuck
            return pruned


async def _prune_thread(
    store: SQLStoreBase[Any],
    owner: str,
    thread_id: str,
    cutoff: int,
    batch_size: int,
    eraser: AttachmentBytesEraser | None,
) -> int:
    """Delete one stale thread's attachments, old items and (if now empty) the thread row."""
    sql = store._sql.sql
    rows = await store._fetch(
        store._sql.thread_attachments, {"owner": owner, "thread_id": thread_id}
    )
    attachments = [_codec.decode_attachment(row[0]) for row in rows]
    await erase_bytes(eraser, owner, attachments)
    for attachment in attachments:
        await store._execute((store._sql.delete_attachment,), {"owner": owner, "id": attachment.id})
    params = {"owner": owner, "thread_id": thread_id, "cutoff": cutoff, "limit": batch_size}
    while await _delete_batch(store, DELETE_STALE_ITEMS, _STALE_ITEMS, params) == batch_size:
        pass
    keys = {"owner": owner, "thread_id": thread_id}
    if store._names.dialect == "postgresql":
        async with store._connection(transaction=True) as conn:
            await conn.execute(sql(LOCK_THREAD_POSTGRESQL), keys)
            return len(await conn.fetch(sql(DELETE_EMPTY_THREAD), keys))
    if store._names.dialect != "mysql":
        return len(await store._fetch(sql(DELETE_EMPTY_THREAD), keys))
    await store._execute((sql(DELETE_EMPTY_THREAD.removesuffix(" RETURNING 1")),), keys)
    gone = await store._fetch_value(store._sql.thread_exists, {"owner": owner, "id": thread_id})
    return 1 if gone is None else 0
