"""The reopen step: what a persistent store wrote is there after a restart, and closing it
releases every connection.

Runs only when the suite defines the optional hook `reopen(store)`, which returns a new store
on the same location (database, file, schema) as `store`; without it both rules are reported
not supported. The suite closes stores with `teardown_store`.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from chatkit.store import NotFoundError
from chatkit.types import (
    ClientToolCallItem,
    FileAttachment,
    HiddenContextItem,
    LockedStatus,
    ThreadItem,
    ThreadMetadata,
)

from ._capabilities import ITEM_WRITES, REOPEN
from ._harness import Harness, SuiteBase, rule
from ._values import JSON_SAMPLE, T0, assistant, ids, row_difference, user_message

T = TypeVar("T")


def open_descriptors() -> int | None:
    """How many file descriptors the process has open (sockets and files: connections), or
    None where the platform does not tell (Linux: /proc/self/fd; macOS and BSD: /dev/fd)."""
    for where in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(where))
        except OSError:
            continue
    return None


async def _read_back(h: Harness, call: str, awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except NotFoundError:
        h.fail(f"after reopening, {call} raised NotFoundError: written before, gone after")


def _other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current and not task.done()}


class ReopenRules(SuiteBase):
    """Rules that need the `reopen(store)` hook."""

    async def _close(self, store: Any) -> None:
        done = self.teardown_store(store)
        if inspect.isawaitable(done):
            await done

    async def _reopen(self, store: Any) -> Any:
        made = self.reopen(store)  # type: ignore[attr-defined]
        return await made if inspect.isawaitable(made) else made

    @rule(
        "reopen-reads-back",
        "after the store is closed and reopened on the same location, every thread, item and "
        "attachment written before reads back exactly, listings included",
        protects="a server restart (deploy, crash) must not change or lose a conversation",
        needs=(REOPEN, ITEM_WRITES),
        depends=(),
    )
    async def test_reopen_reads_back(self, h: Harness) -> None:
        ctx = h.context()
        tid = h.fresh_id("thr_reopen")
        threads = [
            ThreadMetadata(
                id=tid,
                created_at=T0,
                title="kept across restarts",
                status=LockedStatus(reason="r"),
                metadata={"v": JSON_SAMPLE},
            ),
            ThreadMetadata(id=f"{tid}_2", created_at=T0 + timedelta(seconds=1)),
        ]
        items: list[ThreadItem] = [
            user_message(f"{tid}_m0", tid, T0, "ünïcødé 🧵 'quoted'"),
            assistant(f"{tid}_m1", tid, T0 + timedelta(microseconds=1)),
            HiddenContextItem(
                id=f"{tid}_m2",
                thread_id=tid,
                created_at=T0 + timedelta(seconds=1),
                content=JSON_SAMPLE,
            ),
            ClientToolCallItem(
                id=f"{tid}_m3",
                thread_id=tid,
                created_at=T0 + timedelta(seconds=2),
                call_id="c",
                name="tool",
                arguments={"v": JSON_SAMPLE},
            ),
        ]
        attachment = FileAttachment(id=h.fresh_id("atc"), name="a.txt", mime_type="text/plain")
        for saved in threads:
            await h.store.save_thread(saved, ctx)
        for item in items:
            await h.store.add_thread_item(tid, item, ctx)
        if h.capabilities.attachments:
            await h.store.save_attachment(attachment, ctx)
        await self._close(h.recorder.wrapped)
        h.torn_down = True
        reopened = await self._reopen(h.recorder.wrapped)
        h.recorder.wrapped = reopened
        try:
            for saved in threads:
                call = f"load_thread({saved.id!r})"
                loaded = await _read_back(h, call, h.store.load_thread(saved.id, ctx))
                problem = row_difference(saved, loaded)
                h.check(problem is None, f"after reopening, load_thread({saved.id!r}): {problem}")
            listed = await h.store.load_threads(10, None, "desc", ctx)
            h.check(
                ids(listed.data) == [f"{tid}_2", tid],
                f"after reopening, load_threads(10, None, 'desc') lists {ids(listed.data)}",
            )
            for item in items:
                call = f"load_item({tid!r}, {item.id!r})"
                loaded_item = await _read_back(h, call, h.store.load_item(tid, item.id, ctx))
                problem = row_difference(item, loaded_item)
                h.check(problem is None, f"after reopening, load_item({item.id!r}): {problem}")
            page = await h.store.load_thread_items(tid, None, 10, "asc", ctx)
            h.check(
                ids(page.data) == ids(items),
                f"after reopening, load_thread_items({tid!r}, None, 10, 'asc') lists "
                f"{ids(page.data)}, expected {ids(items)}",
            )
            if h.capabilities.attachments:
                call = f"load_attachment({attachment.id!r})"
                loaded_attachment = await _read_back(
                    h, call, h.store.load_attachment(attachment.id, ctx)
                )
                problem = row_difference(attachment, loaded_attachment)
                h.check(problem is None, f"after reopening, load_attachment: {problem}")
        finally:
            await self._close(reopened)

    @rule(
        "close-releases-connections",
        "closing a store releases what it opened: no connection, file or pool task is left "
        "after close",
        protects="a server that reopens stores (tests, reloads, per-tenant stores) runs out of "
        "connections or file descriptors",
        needs=(REOPEN,),
        depends=(),
    )
    async def test_close_releases_connections(self, h: Harness) -> None:
        await self._close(h.recorder.wrapped)
        h.torn_down = True
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()  # connections nothing refers to any more are closed by their finalizers
        before, tasks_before = open_descriptors(), _other_tasks()
        store = await self._reopen(h.recorder.wrapped)
        h.recorder.wrapped = store
        ctx = h.context()
        tid = h.fresh_id("thr_close")
        try:
            await h.store.save_thread(ThreadMetadata(id=tid, created_at=T0), ctx)
            if h.capabilities.item_writes:
                await h.store.add_thread_item(tid, assistant(f"{tid}_m0", tid, T0), ctx)
            # Several calls at once, so a pool opens more than one connection.
            await asyncio.gather(
                *(h.store.load_threads(5, None, "desc", ctx) for _ in range(4)),
                *(h.store.load_thread_items(tid, None, 5, "asc", ctx) for _ in range(4)),
            )
        finally:
            await self._close(store)
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()  # only what the closed store still holds counts
        after, left = open_descriptors(), _other_tasks() - tasks_before
        h.check(
            not left,
            f"after close(), {len(left)} task(s) the store started still run (e.g. "
            f"{sorted(t.get_name() for t in left)[:3]}): an unclosed pool",
        )
        if before is not None and after is not None:
            h.check(
                after <= before,
                f"after close(), {after - before} more file descriptor(s) are open than before "
                "the store was opened: unclosed connections or files",
            )
