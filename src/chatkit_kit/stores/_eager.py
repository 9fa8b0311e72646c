"""Tasks whose first step runs at once, where Python has eager tasks (3.12+).

A pooled connection's checkout or return usually finishes without waiting (an idle connection
is at hand, a return with nothing to reset), yet each runs in a task of its own so that a
cancellation of the call never interrupts it halfway (it finishes in the background). Started
eagerly, such a task is done when it is made, costing no event-loop iterations; only one that
waits (a connect, a reset) goes on in the background. On Python 3.10 and 3.11 the task starts
on the next loop iteration, as any task.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def start_task(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task running `coro`, its first step taken now on Python 3.12+ (eager start: the task
    is current during that step, so timeouts and cancellations bind to it)."""
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
    return asyncio.ensure_future(coro)
