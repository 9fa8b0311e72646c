"""`erase_owner` and `prune` in SQL, over the statements and calls a SQL store hands in.

Every statement touches at most :limit rows. Items and threads go in batches (`DELETE ...
RETURNING` on databases that have it, else `DELETE ... LIMIT` and its row count); attachment
rows go one per statement, after the attachment backend erased their batch's bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from chatkit.types import Attachment

from .._retention import AttachmentBytesEraser, Progress, erase_bytes
from .statements import Statements

Params = dict[str, Any]


class Runner(Protocol):
    """What retention needs of a SQL store: its statements and its (retried) calls."""

    @property
    def statements(self) -> Statements: ...

    async def fetch(self, sql: str, params: Params) -> Sequence[Sequence[Any]]: ...

    async def fetch_value(self, sql: str, params: Params) -> Any: ...

    async def execute(self, sql: str, params: Params) -> None: ...

    async def written(self, sql: str, params: Params) -> int:
        """Run one write; return the rows it wrote or deleted."""
        ...

    async def written_after_lock(self, lock: str, sql: str, params: Params) -> int:
        """Run `lock`, then the write, in one transaction; return the rows written."""
        ...

    def decode_attachment(self, payload: Any) -> Attachment: ...


class SQLRetention:
    """Retention and erasure of one SQL store."""

    __slots__ = ("_run",)

    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def _erase_attachments(
        self, owner: str, rows: Sequence[Sequence[Any]], eraser: AttachmentBytesEraser | None
    ) -> None:
        """Bytes first (through the attachment backend), then the rows, one per statement."""
        run = self._run
        attachments = [run.decode_attachment(row[0]) for row in rows]
        await erase_bytes(eraser, owner, attachments)
        for attachment in attachments:
            await run.execute(
                run.statements.delete_attachment, {"owner": owner, "id": attachment.id}
            )

    async def erase_owner(
        self,
        owner: str,
        batch_size: int,
        progress: Progress | None,
        eraser: AttachmentBytesEraser | None = None,
    ) -> int:
        run, sql = self._run, self._run.statements
        params: Params = {"owner": owner, "limit": batch_size}
        while rows := await run.fetch(sql.owner_attachments, params):
            await self._erase_attachments(owner, rows, eraser)
        while await run.written(sql.delete_owner_items, params) == batch_size:
            pass
        threads = 0
        while True:
            deleted = await run.written(sql.delete_owner_threads, params)
            threads += deleted
            if progress is not None and deleted:
                progress(threads)
            if deleted < batch_size:
                return threads

    async def prune(
        self,
        cutoff: int,
        owner: str | None,
        batch_size: int,
        dry_run: bool,
        progress: Progress | None,
        eraser: AttachmentBytesEraser | None = None,
    ) -> int:
        run, sql = self._run, self._run.statements
        params: Params = {"cutoff": cutoff, "limit": batch_size}
        if owner is not None:
            params["owner"] = owner
        if dry_run:
            count = await run.fetch_value(sql.count_stale_threads(owner is not None), params)
            return int(count or 0)
        pruned = 0
        while True:
            candidates = await run.fetch(sql.stale_threads(owner is not None), params)
            if not candidates:
                return pruned
            batch = 0
            for row_owner, thread_id in candidates:
                batch += await self._prune_thread(row_owner, thread_id, cutoff, batch_size, eraser)
            pruned += batch
            if progress is not None and batch:
                progress(pruned)
            if batch == 0:  # every candidate changed under us (new items): stop, nothing is stuck
                return pruned

    async def _prune_thread(
        self,
        owner: str,
        thread_id: str,
        cutoff: int,
        batch_size: int,
        eraser: AttachmentBytesEraser | None,
    ) -> int:
        """Delete one stale thread's attachments, old items and (if now empty) the thread row."""
        run, sql = self._run, self._run.statements
        keys: Params = {"owner": owner, "thread_id": thread_id}
        await self._erase_attachments(owner, await run.fetch(sql.thread_attachments, keys), eraser)
        params = {**keys, "cutoff": cutoff, "limit": batch_size}
        while await run.written(sql.delete_stale_items, params) == batch_size:
            pass
        lock = sql.lock_thread_before_empty_delete
        if lock is not None:
            return await run.written_after_lock(lock, sql.delete_empty_thread, keys)
        return await run.written(sql.delete_empty_thread, keys)
