"""`does-not-block-loop` judges a call by the loop thread's scheduler statistics, not wall time.

A correct store passes while every core is busy with other processes; a store that sleeps or
does file I/O on the loop fails as "blocking I/O", one that burns CPU as "CPU-bound".
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from chatkit.types import Page, ThreadItem, ThreadMetadata

from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import run_conformance
from chatkit_kit.testing.conformance._loop_hold import LoopHold, LoopThreadClock

from .variant_stores import SimpleStore

RULE = "does-not-block-loop"
LINUX = sys.platform.startswith("linux")


class SleepingStore(MemoryStore[Any]):
    """Waits half a millisecond synchronously in every read (a blocking network driver)."""

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        time.sleep(0.0005)  # noqa: ASYNC251 (the point of this store)
        return await super().load_thread(thread_id, context)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        time.sleep(0.0005)  # noqa: ASYNC251 (the point of this store)
        return await super().load_thread_items(thread_id, after, limit, order, context)

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        time.sleep(0.0005)  # noqa: ASYNC251 (the point of this store)
        return await super().load_item(thread_id, item_id, context)


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class CPUBoundStore(MemoryStore[Any]):
    """Spends 30 ms of its own CPU in every read (works through the whole thread each time)."""

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        _burn(0.03)
        return await super().load_thread(thread_id, context)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        _burn(0.03)
        return await super().load_thread_items(thread_id, after, limit, order, context)

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        _burn(0.03)
        return await super().load_item(thread_id, item_id, context)


@pytest.fixture
def busy_cores() -> Iterator[int]:
    """One busy-loop process per core for the length of the test (bounded at 5 minutes)."""
    import os

    cores = os.cpu_count() or 2
    spin = "import time\nend = time.monotonic() + 300\nwhile time.monotonic() < end: pass\n"
    processes = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores)]
    try:
        yield cores
    finally:
        for process in processes:
            process.kill()
            process.wait()


@pytest.mark.skipif(not LINUX, reason="scheduler statistics are read on Linux")
@pytest.mark.parametrize("store_class", [MemoryStore, SimpleStore], ids=lambda c: c.__name__)
def test_correct_store_passes_with_every_core_busy(store_class: type[Any], busy_cores: int) -> None:
    for _ in range(3):
        report = run_conformance(store_class, rules={RULE})
        assert report.passed == [RULE], str(report)


@pytest.mark.skipif(not LINUX, reason="voluntary context switches are read on Linux")
def test_sleeping_store_fails_as_blocking_io() -> None:
    report = run_conformance(SleepingStore, rules={RULE})
    assert report.failed_rules == {RULE}, str(report)
    message = report.failed[RULE]
    assert "did blocking I/O without yielding to the event loop" in message, message
    assert "slept" in message, message


def test_cpu_bound_store_fails_as_cpu_bound() -> None:
    report = run_conformance(CPUBoundStore, rules={RULE})
    assert report.failed_rules == {RULE}, str(report)
    message = report.failed[RULE]
    assert "were CPU-bound" in message, message
    assert "did blocking I/O" not in message, message


def _hold(**overrides: Any) -> LoopHold:
    values: dict[str, Any] = {
        "yielded": False,
        "wall": 0.0002,
        "cpu": 0.0002,
        "slept": 0.0,
        "voluntary_switches": 0,
        "file_syscalls": 0,
        "counters": True,
    }
    values.update(overrides)
    return LoopHold(**values)


def test_preemption_alone_is_not_blocking() -> None:
    """20 ms of wall time off the CPU while runnable: no sleep, no system call, no verdict."""
    hold = _hold(wall=0.02, cpu=0.0003, slept=0.0)
    assert not hold.blocking_io(0.001) and not hold.cpu_bound(0.01)


def test_counters_decide_blocking_io() -> None:
    assert _hold(file_syscalls=3).blocking_io(0.001)
    assert _hold(voluntary_switches=1).blocking_io(0.001)
    assert not _hold(file_syscalls=3, yielded=True).blocking_io(0.001)
    assert _hold(cpu=0.02).cpu_bound(0.01) and not _hold(cpu=0.02, yielded=True).cpu_bound(0.01)


def test_without_counters_off_cpu_time_is_the_fallback() -> None:
    no_counters = {"counters": False, "voluntary_switches": None, "file_syscalls": None}
    assert _hold(wall=0.003, cpu=0.0005, **no_counters).blocking_io(0.001)
    assert not _hold(wall=0.0012, cpu=0.0005, **no_counters).blocking_io(0.001)
    assert "off the CPU" in _hold(wall=0.003, **no_counters).describe()


@pytest.mark.skipif(not LINUX, reason="task I/O accounting is read on Linux")
def test_clock_counts_the_calls_file_reads_and_nothing_of_its_own(tmp_path: Any) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"x" * 10)

    async def reads() -> None:
        for _ in range(4):
            with open(path, "rb") as file:  # noqa: ASYNC230 (what is measured)
                file.read()

    async def nothing() -> None:
        return None

    async def yields() -> None:
        await asyncio.sleep(0)

    async def main() -> tuple[LoopHold, LoopHold, LoopHold]:
        clock = LoopThreadClock()
        try:
            return (
                await clock.measure(reads),
                await clock.measure(nothing),
                await clock.measure(yields),
            )
        finally:
            clock.close()

    read, idle, yielding = asyncio.run(main())
    assert read.file_syscalls is not None and read.file_syscalls >= 4, read
    assert idle.file_syscalls == 0 and idle.voluntary_switches == 0, idle
    assert not read.yielded and not idle.yielded and yielding.yielded
