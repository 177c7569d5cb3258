"""Write-behind: callers on the audio path append in O(1); a task owned by the writer flushes batches
to the store in a worker thread. Bounded: when the store falls behind, the oldest items are dropped
(and counted) rather than stalling calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class BatchWriter(Generic[T]):
    def __init__(
        self,
        flush: Callable[[list[T], bool], None],
        *,
        name: str,
        interval_s: float = 0.5,
        max_batch: int = 2000,
        max_pending: int = 200_000,
    ) -> None:
        self._flush_fn = flush  # (batch, final) -> None; runs in a thread
        self.name = name
        self.interval_s = interval_s
        self.max_batch = max_batch
        self._pending: deque[T] = deque()
        self._max_pending = max_pending
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = False
        self.dropped = 0
        self.written = 0
        self.failures = 0

    def put(self, item: T) -> None:
        self._pending.append(item)
        if len(self._pending) > self._max_pending:
            self._pending.popleft()
            self.dropped += 1
        if len(self._pending) >= self.max_batch:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"writer:{self.name}")

    async def _run(self) -> None:
        backoff = self.interval_s
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._closing:
                return
            try:
                await self.flush()
                backoff = self.interval_s
            except Exception:  # the store is down: keep the items, retry later
                self.failures += 1
                log.exception("%s: flush failed; retrying", self.name)
                backoff = min(30.0, backoff * 2)

    async def flush(self, *, final: bool = False) -> None:
        """Write everything pending (in batches); on failure the unwritten items stay pending."""
        async with self._lock:
            for _ in range(1 + len(self._pending) // self.max_batch):
                if not self._pending and not final:
                    return
                batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
                last = not self._pending
                try:
                    await asyncio.to_thread(self._flush_fn, batch, final and last)
                except BaseException:
                    self._pending.extendleft(reversed(batch))
                    raise
                self.written += len(batch)
                if last:
                    return

    async def aclose(self) -> None:
        """Stop the task between flushes (never mid-write, so nothing is written twice), then flush the rest."""
        if self._task is not None:
            self._closing = True
            self._wake.set()
            await self._task
            self._task = None
        try:
            await self.flush(final=True)
        except Exception:
            log.exception("%s: final flush failed; %d items lost", self.name, len(self._pending))
