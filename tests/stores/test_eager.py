"""The eagerly started tasks guarding SQLAlchemyStore's checkouts and returns."""

from __future__ import annotations

import asyncio
import sys

import pytest

from chatkit_kit.stores import _eager


async def test_a_task_that_never_waits_is_done_when_made_on_python_312_and_later() -> None:
    steps: list[str] = []

    async def no_wait() -> int:
        steps.append("ran")
        return 7

    task = _eager.start_task(no_wait())
    if sys.version_info >= (3, 12):
        assert task.done() and task.result() == 7 and steps == ["ran"]
    else:
        assert not task.done() and steps == []
    assert await task == 7


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
