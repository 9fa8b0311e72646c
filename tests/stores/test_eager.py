"""The eagerly started tasks (Python 3.12+, and their 3.10 and 3.11 equivalent) guarding
SQLAlchemyStore's checkouts and returns."""

from __future__ import annotations

import asyncio
import contextvars
import sys

import pytest

from chatkit_kit.stores import _eager


async def test_work_that_never_waits_is_done_when_started() -> None:
    steps: list[str] = []
    loop = asyncio.get_running_loop()

    async def no_wait() -> int:
        steps.append("ran")
        return 7

    before = len(asyncio.all_tasks(loop))
    work = _eager.start_task(no_wait())
    assert work.done() and work.result() == 7 and steps == ["ran"]
    assert await work == 7
    await asyncio.sleep(0)  # (before 3.12, the task that stood by has ended)
    assert len(asyncio.all_tasks(loop)) == before


async def test_the_first_step_runs_as_its_own_task_in_its_own_context() -> None:
    """The work's first step sees its own task as the current one (a timeout entered there
    binds to it), and what it sets in its context is there after it waited."""
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="caller")
    caller = asyncio.current_task()
    seen: list[object] = []

    async def waits_once() -> str:
        seen.append(asyncio.current_task())
        marker.set("work")
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())
        return marker.get()

    work = _eager.start_task(waits_once())
    assert asyncio.current_task() is caller  # (the caller is current again)
    assert len(seen) == 1
    assert await work == "work"
    assert marker.get() == "caller"
    assert seen[0] is not caller and seen[0] is seen[1] is work


async def test_work_cancelled_before_its_task_goes_on_is_cancelled_where_it_waits() -> None:
    """Cancelled right after its first step: the work gets the cancellation at its wait (its
    `finally` runs) and the future it waited on is cancelled, as a task's would be."""
    waited_on: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await waited_on
        finally:
            cleaned.append("finally")

    work = _eager.start_task(waits())
    assert not work.done()
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work
    assert work.cancelled() and cleaned == ["finally"] and waited_on.cancelled()


async def test_work_that_cancels_itself_in_its_first_step_is_cancelled() -> None:
    async def cancels() -> None:
        raise asyncio.CancelledError

    work = _eager.start_task(cancels())
    await asyncio.sleep(0)
    assert work.cancelled()


def test_work_started_from_a_loop_callback_runs_without_a_caller_task() -> None:
    """`_settle` starts a return from a done callback, where no task is current."""

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        seen: list[object] = []
        started: asyncio.Future[asyncio.Future[None]] = loop.create_future()

        async def work() -> None:
            seen.append(asyncio.current_task())
            await asyncio.sleep(0)

        def callback() -> None:
            seen.append(asyncio.current_task())
            started.set_result(_eager.start_task(work()))
            seen.append(asyncio.current_task())

        loop.call_soon(callback)
        await (await started)
        return seen

    before, during, after = asyncio.run(main())
    assert before is None and after is None and isinstance(during, asyncio.Task)


async def test_a_timeout_inside_a_waiting_task_cancels_that_task_not_its_caller() -> None:
    """A checkout that waits under `asyncio.timeout` (SQLAlchemy's pool on Python 3.11+): the
    timeout belongs to the task, so it ends the checkout and leaves the caller running."""

    async def waits_too_long() -> None:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        else:  # (SQLAlchemy's pool waits under asyncio.wait_for there)
            await asyncio.wait_for(asyncio.Event().wait(), 0.01)

    task = _eager.start_task(waits_too_long())
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), 30)
    assert task.done()
    await asyncio.sleep(0)  # the caller was not cancelled: it goes on
    current = asyncio.current_task()
    assert current is not None and not current.cancelled()
    if sys.version_info >= (3, 11):
        assert current.cancelling() == 0


async def test_an_error_in_the_first_step_is_the_tasks_error() -> None:
    async def fails() -> None:
        raise LookupError("no connection")

    task = _eager.start_task(fails())
    with pytest.raises(LookupError, match="no connection"):
        await task


async def test_a_waiting_task_is_described_by_its_work() -> None:
    """`repr` of the task (what asyncio prints for a task never retrieved or destroyed while
    pending) names the work's coroutine and where it waits, on every Python."""
    release = asyncio.Event()

    async def checkout_that_waits() -> None:
        await release.wait()

    task = _eager.start_task(checkout_that_waits())
    assert isinstance(task, asyncio.Task)
    described = repr(task)
    assert "checkout_that_waits" in described, described
    assert "test_eager.py" in described, described  # (the work's code: file and line)
    release.set()
    await task
