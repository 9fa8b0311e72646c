"""How a store call held the event loop, from the loop thread's own scheduler statistics.

Wall time is no measure of blocking on a shared machine: a call that is preempted for 2 ms by
another process looks exactly like one that waited 2 ms on a disk. So a call that never let
another task run is judged by what the thread itself did meanwhile, as the kernel counts it:

- **blocking I/O**: the thread made file read or write system calls (`/proc/thread-self/io`:
  `syscr`, `syscw`), or went to sleep (voluntary context switches, `getrusage(RUSAGE_THREAD)`)
  without yielding to the loop. A correct async store does neither while it holds the loop: its
  I/O waits happen while other tasks run. The time it slept (wall time less the thread's CPU
  time less the time it waited, runnable, for a CPU: `/proc/thread-self/schedstat`) is shown.
- **CPU-bound**: the thread's own CPU time (`time.thread_time`) for the call reached a threshold.
  CPU contention does not add to it: time spent waiting for a CPU is not the thread's CPU time.

Where the platform has none of these counters (not Linux), the fallback is the call's off-CPU
time (wall less CPU time): it cannot tell a preempted call from a blocked one, so it is sensitive
to machine load there; docs/testing.md says so.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

_RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)


@dataclass(frozen=True)
class _Sample:
    wall: float
    cpu: float
    run_wait: float | None
    """Seconds spent runnable but waiting for a CPU (schedstat), or None."""
    voluntary_switches: int | None
    file_syscalls: int | None
    """read and write system calls on files (task I/O accounting), or None."""


@dataclass(frozen=True)
class LoopHold:
    """What one store call did while it held the event loop."""

    yielded: bool
    """Another task ran during the call: the call did not hold the loop throughout."""
    wall: float
    cpu: float
    """The loop thread's CPU time for the call (seconds)."""
    slept: float | None
    """Seconds the thread was off the CPU and not runnable, where schedstat tells."""
    voluntary_switches: int | None
    file_syscalls: int | None
    counters: bool
    """The platform's counters were read (False: the wall-time fallback)."""

    def blocking_io(self, fallback_threshold: float) -> bool:
        """The call waited on I/O (or slept) on the loop thread without yielding."""
        if self.yielded:
            return False
        if self.counters:
            return bool(self.file_syscalls) or bool(self.voluntary_switches)
        return self.wall - self.cpu >= fallback_threshold

    def cpu_bound(self, threshold: float) -> bool:
        """The call ran `threshold` seconds of the thread's CPU without yielding."""
        return not self.yielded and self.cpu >= threshold

    def describe(self) -> str:
        """A short account of the evidence, for a failure message."""
        parts = [f"{self.cpu * 1000:.1f} ms CPU"]
        if self.file_syscalls:
            parts.append(f"{self.file_syscalls} file read/write system calls")
        if self.voluntary_switches:
            parts.append(f"slept {self.voluntary_switches} times")
        if self.slept is not None and self.slept >= 0.0001:
            parts.append(f"{self.slept * 1000:.1f} ms asleep")
        if not self.counters:
            parts.append(f"{(self.wall - self.cpu) * 1000:.1f} ms off the CPU")
        return ", ".join(parts)


class LoopThreadClock:
    """Reads the calling thread's scheduler and I/O counters; open it on the loop thread."""

    def __init__(self) -> None:
        self._schedstat = _open("/proc/thread-self/schedstat")
        self._io = _open("/proc/thread-self/io")

    def close(self) -> None:
        for fd in (self._schedstat, self._io):
            if fd is not None:
                os.close(fd)

    @property
    def counters(self) -> bool:
        return _RUSAGE_THREAD is not None or self._io is not None

    def sample(self) -> _Sample:
        run_wait = None
        if self._schedstat is not None:
            fields = os.pread(self._schedstat, 256, 0).split()
            run_wait = int(fields[1]) / 1e9 if len(fields) >= 2 else None
        syscalls = None
        if self._io is not None:
            syscalls = _io_syscalls(os.pread(self._io, 1024, 0))
        switches = None
        if _RUSAGE_THREAD is not None:
            switches = resource.getrusage(_RUSAGE_THREAD).ru_nvcsw
        return _Sample(time.perf_counter(), time.thread_time(), run_wait, switches, syscalls)

    async def measure(self, call: Callable[[], Awaitable[Any]]) -> LoopHold:
        """Run one store call on this loop and return how it held the loop."""
        ticks = 0
        running = True

        async def heartbeat() -> None:
            nonlocal ticks
            while running:
                ticks += 1
                await asyncio.sleep(0)

        beat = asyncio.ensure_future(heartbeat())
        await asyncio.sleep(0)  # let the heartbeat start
        # Two samples back to back: what sampling itself adds to the counters.
        first = self.sample()
        before = self.sample()
        ticks_before = ticks
        try:
            await call()
        finally:
            after = self.sample()
            yielded = ticks != ticks_before
            running = False
            await beat
        wall, cpu = after.wall - before.wall, after.cpu - before.cpu
        slept = None
        if after.run_wait is not None and before.run_wait is not None:
            slept = max(0.0, wall - cpu - (after.run_wait - before.run_wait))
        return LoopHold(
            yielded=yielded,
            wall=wall,
            cpu=cpu,
            slept=slept,
            voluntary_switches=_delta(first, before, after, "voluntary_switches"),
            file_syscalls=_delta(first, before, after, "file_syscalls"),
            counters=self.counters,
        )


def _open(path: str) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        os.pread(fd, 1024, 0)
    except OSError:
        os.close(fd)
        return None
    return fd


def _io_syscalls(text: bytes) -> int | None:
    counts: dict[bytes, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(b":")
        if key in (b"syscr", b"syscw"):
            counts[key] = int(value)
    return sum(counts.values()) if len(counts) == 2 else None


def _delta(first: _Sample, before: _Sample, after: _Sample, field: str) -> int | None:
    """The call's share of a counter: its change less what one sampling adds."""
    a: int | None = getattr(first, field)
    b: int | None = getattr(before, field)
    c: int | None = getattr(after, field)
    if a is None or b is None or c is None:
        return None
    return max(0, (c - b) - (b - a))
