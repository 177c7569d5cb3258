"""Per-model circuit breakers: closed -> open (ejected) -> half-open (probe calls) -> closed.

A breaker judges only the last `window` calls and gives no verdict before `min_calls`; slow calls
(first output later than the role's slow threshold) trip it too, because a voice user hears them.
Each ejection lasts longer than the one before; a breaker that stays healthy is forgiven.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from router.clock import Clock


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    window: int = 20  # the last N calls are judged
    min_calls: int = 5  # no verdict on fewer calls
    failure_rate: float = 0.5  # trips when this share of the window failed
    slow_rate: float = 0.8  # ... or when this share was slow
    base_ejection_s: float = 10.0
    ejection_multiplier: float = 2.0
    max_ejection_s: float = 300.0
    probe_calls: int = 1  # trial calls admitted at once while half-open
    probes_to_close: int = 2  # successful trials before the breaker closes
    forgive_after_s: float = 600.0  # closed and healthy this long: past ejections no longer lengthen the next

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_calls < 1 or self.min_calls > self.window:
            raise ValueError("breaker needs 1 <= min_calls <= window")
        if self.probe_calls < 1 or self.probes_to_close < 1:
            raise ValueError("breaker needs at least one probe call")

    def ejection_s(self, ejections: int) -> float:
        return min(self.max_ejection_s, self.base_ejection_s * self.ejection_multiplier ** max(0, ejections - 1))


@dataclass(frozen=True)
class BreakerSnapshot:
    model: str
    state: BreakerState
    ejections: int  # consecutive (unforgiven) ejections: sets the next ejection's length
    open_until: float | None
    window_calls: int
    window_failures: int
    window_slow: int
    attempts: int
    successes: int
    failures: int
    slow_calls: int
    rejected: int
    probes: int
    released: int
    ejections_total: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in self.__dict__.items()}


class CircuitBreaker:
    def __init__(
        self,
        model: str,
        config: BreakerConfig,
        clock: Clock,
        on_change: Callable[[str, BreakerState, BreakerState, str], None] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._window: deque[tuple[bool, bool]] = deque(maxlen=config.window)  # (failed, slow)
        self._open_until: float | None = None
        self._ejections = 0
        self._closed_since = clock()
        self._probes_in_flight = 0
        self._probe_successes = 0
        self.attempts = self.successes = self.failures = self.slow_calls = 0
        self.rejected = self.probes = self.released = self.ejections_total = 0

    def reconfigure(self, config: BreakerConfig) -> None:
        self.config = config
        self._window = deque(self._window, maxlen=config.window)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._open_until is not None and self._clock() >= self._open_until:
            self._set(BreakerState.HALF_OPEN, "ejection elapsed: probing")
            self._probes_in_flight = 0
            self._probe_successes = 0
        return self._state

    def is_open(self) -> bool:
        return self.state is BreakerState.OPEN

    def allow(self) -> bool:
        """Admit a call (counted as an attempt) or reject it (counted too). Pair with record() or release()."""
        state = self.state
        if state is BreakerState.OPEN:
            self.rejected += 1
            return False
        if state is BreakerState.HALF_OPEN:
            if self._probes_in_flight >= self.config.probe_calls:
                self.rejected += 1
                return False
            self._probes_in_flight += 1
            self.probes += 1
        self.attempts += 1
        return True

    def release(self) -> None:
        """The admitted call ended without a verdict (the caller went away)."""
        self.released += 1
        if self._state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def record(self, *, ok: bool, slow: bool = False) -> None:
        if ok:
            self.successes += 1
        else:
            self.failures += 1
        if slow:
            self.slow_calls += 1
        if self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            if not ok or slow:
                self._trip("probe call failed" if not ok else "probe call was slow")
                return
            self._probe_successes += 1
            if self._probe_successes >= self.config.probes_to_close:
                self._window.clear()
                self._closed_since = self._clock()
                self._set(BreakerState.CLOSED, f"{self._probe_successes} probe calls succeeded")
            return
        if self._state is BreakerState.OPEN:
            return  # a call admitted before the breaker opened; its verdict is already known
        self._window.append((not ok, slow))
        n = len(self._window)
        if n < self.config.min_calls:
            return
        failed = sum(1 for f, _ in self._window if f)
        slowed = sum(1 for _, s in self._window if s)
        if failed / n >= self.config.failure_rate:
            self._trip(f"{failed}/{n} recent calls failed")
        elif slowed / n >= self.config.slow_rate:
            self._trip(f"{slowed}/{n} recent calls were slow")

    def _trip(self, reason: str) -> None:
        now = self._clock()
        if self._state is BreakerState.CLOSED and now - self._closed_since >= self.config.forgive_after_s:
            self._ejections = 0
        self._ejections += 1
        self.ejections_total += 1
        self._open_until = now + self.config.ejection_s(self._ejections)
        self._window.clear()
        self._probes_in_flight = 0
        self._set(BreakerState.OPEN, f"{reason}; ejected for {self.config.ejection_s(self._ejections):.0f} s")

    def _set(self, state: BreakerState, reason: str) -> None:
        before, self._state = self._state, state
        if state is BreakerState.CLOSED:
            self._open_until = None
        if before is not state and self._on_change is not None:
            self._on_change(self.model, before, state, reason)

    def snapshot(self) -> BreakerSnapshot:
        state = self.state
        return BreakerSnapshot(
            model=self.model,
            state=state,
            ejections=self._ejections,
            open_until=self._open_until if state is BreakerState.OPEN else None,
            window_calls=len(self._window),
            window_failures=sum(1 for f, _ in self._window if f),
            window_slow=sum(1 for _, s in self._window if s),
            attempts=self.attempts,
            successes=self.successes,
            failures=self.failures,
            slow_calls=self.slow_calls,
            rejected=self.rejected,
            probes=self.probes,
            released=self.released,
            ejections_total=self.ejections_total,
        )


class BreakerBoard:
    """One breaker per model, created on first use with the current mode's tuning."""

    def __init__(
        self,
        config: BreakerConfig,
        clock: Clock,
        on_change: Callable[[str, BreakerState, BreakerState, str], None] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._on_change = on_change
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, model: str) -> CircuitBreaker:
        breaker = self._breakers.get(model)
        if breaker is None:
            breaker = self._breakers[model] = CircuitBreaker(model, self._config, self._clock, self._on_change)
        return breaker

    def is_open(self, model: str) -> bool:
        breaker = self._breakers.get(model)
        return breaker is not None and breaker.is_open()

    def reconfigure(self, config: BreakerConfig) -> None:
        self._config = config
        for breaker in self._breakers.values():
            breaker.reconfigure(config)

    def snapshots(self) -> list[BreakerSnapshot]:
        return [b.snapshot() for b in self._breakers.values()]
