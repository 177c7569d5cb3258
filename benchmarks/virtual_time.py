"""An asyncio event loop on virtual time, for replaying hours of simulated traffic in seconds.

`loop.time()` is simulated. When no callback is ready and no I/O is pending, the loop does not sleep
until its next timer: it moves its clock to that timer and runs it. Everything built on the loop's
timers (asyncio.sleep, asyncio.timeout, wait_for, call_later) therefore runs on simulated time, while
the code in between runs at full speed (its CPU time does not advance the simulated clock).

Real I/O still works: ready file descriptors are served before the clock moves, and with no timer
left the loop blocks on real I/O as usual (a worker thread finishing, a signal). Work done in threads
takes no simulated time, so a simulation should keep its hot path on the loop.

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        runner.run(main())
"""

from __future__ import annotations

import asyncio
import selectors


class _FastForwardSelector(selectors.DefaultSelector):
    """Polls real I/O without blocking; where the loop would wait for its next timer, advances its clock instead."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or (timeout is not None and timeout <= 0):
            return events
        if timeout is None:  # no timer at all: only real I/O (a thread, a signal) can wake the loop
            self._loop.real_waits += 1
            return super().select(None)
        self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock starts at 0 and jumps from timer to timer instead of sleeping."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        self.real_waits = 0  # times the loop blocked on real I/O because no timer was left
        super().__init__(_FastForwardSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (the selector does this when the loop would otherwise sleep)."""
        if seconds < 0:
            raise ValueError("virtual time does not go backwards")
        self._virtual_now += seconds
