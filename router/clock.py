"""The router's notion of time, injectable so stale-telemetry tests and the benchmark run in simulated time."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]  # seconds since the epoch


def system_clock() -> float:
    return time.time()


class ManualClock:
    """A clock that moves only when told to: simulated time for tests and replayed traces."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self.now += seconds
        return self.now

    def set(self, ts: float) -> None:
        self.now = float(ts)
