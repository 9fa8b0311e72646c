"""Tasks whose first step runs at once: eager tasks on Python 3.12+, the same on 3.10 and 3.11.

A pooled connection's checkout or return usually finishes without waiting (an idle connection
is at hand, a return with nothing to reset), yet each runs in a task of its own so that a
cancellation of the call never interrupts it halfway (it finishes in the background). Started
eagerly, such work is done when it is started, costing no event-loop iterations; only work
that waits (a connect, a reset) goes on in the background.

Python 3.12+ has eager tasks (`eager_start=True`). Python 3.10 and 3.11 get the same behaviour
here: a task is made for the work and the work's first step runs at once, as that task (it is
the current task during the step), so timeouts and cancellations entered in the first step
bind to the task, never to the caller. Every step of the work runs in one context of its own,
copied from the caller's, as a task's steps do. Work that finished in its first step is handed
back as a done future; its task then ends on the next loop iteration without running anything.
Work that waits goes on in the task. This uses asyncio's `_enter_task` and `_leave_task`, which
Python 3.10 and 3.11 no longer change.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start_task(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """The outcome of `coro`, run in a task of its own whose first step is taken now: a done
    future (or done task) when `coro` finished without waiting, else its task."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=loop, eager_start=True)
    return _start_now(loop, coro)


_NOT_STARTED = object()
# What asyncio reads off a task's coroutine to describe it (`repr(task)`, debug-mode reports):
# the wrapped coroutine's, so the work is named, not the wrapper.
_DESCRIBED_BY_THE_WORK = frozenset(
    {"__name__", "__qualname__", "cr_await", "cr_code", "cr_frame", "cr_running"}
)


class _Resumed(Coroutine[Any, Any, Any]):
    """What a task runs on Python 3.10 and 3.11: `coro`, whose first step was taken before the
    task's first step, every step in `coro`'s own context. `yielded` is what that first step
    yielded (the future `coro` waits on); a task whose work finished in that step (`finished`)
    ends at its own first step without running anything."""

    __slots__ = ("_context", "_coro", "_yielded", "finished")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._context = contextvars.copy_context()
        self._yielded: Any = _NOT_STARTED
        self.finished = False

    def first_step(self) -> None:
        """Take `coro`'s first step (the caller makes this the current task meanwhile)."""
        self._yielded = self._context.run(self._coro.send, None)

    def send(self, value: Any) -> Any:
        if self.finished:
            raise StopIteration(None)
        yielded = self._yielded
        if yielded is not _NOT_STARTED:  # the task's first step: wait on what `coro` yielded
            self._yielded = _NOT_STARTED
            return yielded
        return self._context.run(self._coro.send, value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if self.finished:
            raise StopIteration(None)
        error = typ if val is None else val
        yielded = self._yielded
        if yielded is not _NOT_STARTED:  # cancelled before the task took its first step
            self._yielded = _NOT_STARTED
            if isinstance(yielded, asyncio.Future):
                yielded.cancel()  # (as a task cancels the future it waits on)
        return self._context.run(self._coro.throw, error)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:  # (never awaited: driven by its task)
        raise TypeError("run by its task only")

    def __getattr__(self, name: str) -> Any:
        if name in _DESCRIBED_BY_THE_WORK:
            return getattr(self._coro, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._coro!r}>"


def _start_now(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    work = _Resumed(coro)
    task = loop.create_task(work)
    caller = asyncio.current_task(loop)  # (None in a callback)
    if caller is not None:
        asyncio.tasks._leave_task(loop, caller)
    asyncio.tasks._enter_task(loop, task)
    try:
        work.first_step()
    except StopIteration as stop:
        return _finished(loop, work, result=stop.value)
    except asyncio.CancelledError:
        return _finished(loop, work, cancelled=True)
    except Exception as error:
        return _finished(loop, work, error=error)
    except BaseException:  # (KeyboardInterrupt, SystemExit: as a task, raised on)
        work.finished = True
        raise
    finally:
        asyncio.tasks._leave_task(loop, task)
        if caller is not None:
            asyncio.tasks._enter_task(loop, caller)
    return task


def _finished(
    loop: asyncio.AbstractEventLoop,
    work: _Resumed,
    *,
    result: Any = None,
    error: Exception | None = None,
    cancelled: bool = False,
) -> asyncio.Future[Any]:
    work.finished = True
    outcome: asyncio.Future[Any] = loop.create_future()
    if cancelled:
        outcome.cancel()
    elif error is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(result)
    return outcome
