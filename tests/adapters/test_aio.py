"""adapters/aio.py: stopping tasks waits for their clean-up, never swallows the caller's cancellation, and
never loses a task's error."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters.aio import TaskSet, cancel_and_wait


async def test_cancel_and_wait_returns_after_the_task_cleaned_up():
    cleaned = []

    async def worker():
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.01)  # clean-up that itself awaits
            cleaned.append(True)

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    await cancel_and_wait(task, None)
    assert cleaned == [True] and task.cancelled()


async def test_the_callers_cancellation_propagates_while_it_waits():
    release = asyncio.Event()

    async def stubborn():
        try:
            await asyncio.sleep(60)
        finally:
            await release.wait()  # slow to stop

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    closer = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0.01)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert not task.done()  # the caller stopped waiting; the task still ends on its own
    release.set()
    await asyncio.wait([task])
    assert task.cancelled()


async def test_a_task_that_had_failed_is_logged_not_raised(caplog):
    async def broken():
        raise ValueError("boom")

    task = asyncio.create_task(broken(), name="broken-one")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="adapters.aio"):
        await cancel_and_wait(task)
    assert "broken-one" in caplog.text and "boom" in caplog.text


async def test_task_set_forgets_finished_tasks_and_closes_the_rest():
    tasks = TaskSet()
    quick = tasks.create_task(asyncio.sleep(0), name="quick")
    slow = tasks.create_task(asyncio.sleep(60), name="slow")
    await quick
    await asyncio.sleep(0)
    assert list(tasks) == [slow]
    await tasks.aclose()
    assert slow.cancelled() and len(tasks) == 0
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="closed"):
        tasks.create_task(coro, name="late")
    assert coro.cr_frame is None  # closed, so never a "was never awaited" warning
