"""Owning asyncio tasks: start them in a `TaskSet`, stop them with `cancel_and_wait`.

It lives in the lowest layer that runs tasks (adapters), so that adapters, router and voice share it. Every
owner of background tasks keeps them in one `TaskSet` and awaits `aclose()` when it closes. Stopping
never swallows the caller's own cancellation: a caller cancelled while it waits for its tasks to end stops
waiting and is cancelled, as asyncio means it to be (`gather(..., return_exceptions=True)` after `cancel()`
would instead absorb it). A task that had already failed when it was stopped has its error logged, not lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


async def cancel_and_wait(*tasks: asyncio.Future | None) -> None:
    """Cancel each task (None and finished ones are skipped) and wait until every one has ended.

    Waiting goes through a future of our own per task, so the tasks' own outcomes never reach the caller,
    while the caller's cancellation does."""
    loop = asyncio.get_running_loop()
    pending: list[tuple[asyncio.Future, asyncio.Future]] = []
    for task in tasks:
        if task is None:
            continue
        if task.done():
            _report(task)
            continue
        ended = loop.create_future()
        task.add_done_callback(lambda t, ended=ended: ended.done() or ended.set_result(None))
        task.cancel()
        pending.append((task, ended))
    for task, ended in pending:
        await ended
        _report(task)


def _report(task: asyncio.Future) -> None:
    """Retrieve a finished task's outcome: an error is logged (it would otherwise warn at garbage collection)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
        log.error("task %s had failed: %r", name, exc, exc_info=exc)


class TaskSet:
    """The background tasks of one owner; a task leaves the set when it ends."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self.closed = False

    def create_task(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        if self.closed:
            coro.close()
            raise RuntimeError(f"task set is closed; {name} not started")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task]:
        return iter(list(self._tasks))

    async def cancel(self, task: asyncio.Task | None) -> None:
        """Stop one task of the set (or None: nothing)."""
        await cancel_and_wait(task)

    async def aclose(self) -> None:
        """Cancel every task and wait for all of them; no new task starts afterwards."""
        self.closed = True
        await cancel_and_wait(*self._tasks)
