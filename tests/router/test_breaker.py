"""router/breaker.py: circuit breaker transitions: min calls, failure and slow rates, half-open probes, growing
ejections."""

from __future__ import annotations

import pytest

from router.breaker import BreakerConfig, BreakerState, CircuitBreaker
from router.clock import ManualClock

CFG = BreakerConfig(
    window=10,
    min_calls=4,
    failure_rate=0.5,
    slow_rate=0.75,
    base_ejection_s=10,
    ejection_multiplier=2,
    max_ejection_s=35,
    probe_calls=1,
    probes_to_close=2,
    forgive_after_s=100,
)


def _calls(b: CircuitBreaker, n: int, *, ok: bool, slow: bool = False) -> None:
    for _ in range(n):
        assert b.allow()
        b.record(ok=ok, slow=slow)


def test_no_verdict_before_min_calls() -> None:
    b = CircuitBreaker("m", CFG, ManualClock())
    _calls(b, 3, ok=False)
    assert b.state is BreakerState.CLOSED
    _calls(b, 1, ok=False)
    assert b.state is BreakerState.OPEN


def test_failure_rate_below_threshold_stays_closed() -> None:
    b = CircuitBreaker("m", CFG, ManualClock())
    for _ in range(5):
        _calls(b, 2, ok=True)
        _calls(b, 1, ok=False)
    assert b.state is BreakerState.CLOSED


def test_slow_calls_trip_the_breaker() -> None:
    b = CircuitBreaker("m", CFG, ManualClock())
    _calls(b, 4, ok=True, slow=True)
    assert b.state is BreakerState.OPEN
    assert b.snapshot().slow_calls == 4


def test_open_rejects_and_counts_then_half_open_admits_one_probe() -> None:
    clock = ManualClock()
    changes: list[tuple[str, str]] = []
    b = CircuitBreaker(
        "m", CFG, clock, on_change=lambda m, before, after, why: changes.append((before.value, after.value))
    )
    _calls(b, 4, ok=False)
    assert not b.allow() and not b.allow()
    assert b.snapshot().rejected == 2
    clock.advance(9.9)
    assert b.state is BreakerState.OPEN
    clock.advance(0.2)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # only one probe at a time
    b.record(ok=True)
    assert b.state is BreakerState.HALF_OPEN  # needs two successful probes
    assert b.allow()
    b.record(ok=True)
    assert b.state is BreakerState.CLOSED
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    snap = b.snapshot()
    assert (snap.attempts, snap.probes, snap.successes, snap.failures) == (6, 2, 2, 4)


def test_failed_probe_reopens_for_longer_each_time_up_to_the_cap() -> None:
    clock = ManualClock()
    b = CircuitBreaker("m", CFG, clock)
    _calls(b, 4, ok=False)
    lengths = []
    for _ in range(4):
        opened_at = clock()
        until = b.snapshot().open_until
        assert until is not None
        lengths.append(until - opened_at)
        clock.set(until)
        assert b.allow()
        b.record(ok=False)
    assert lengths == [10, 20, 35, 35]
    assert b.snapshot().ejections_total == 5


def test_slow_probe_counts_as_failed() -> None:
    clock = ManualClock()
    b = CircuitBreaker("m", CFG, clock)
    _calls(b, 4, ok=False)
    clock.advance(10)
    assert b.allow()
    b.record(ok=True, slow=True)
    assert b.state is BreakerState.OPEN


def test_released_probe_frees_the_slot_without_a_verdict() -> None:
    clock = ManualClock()
    b = CircuitBreaker("m", CFG, clock)
    _calls(b, 4, ok=False)
    clock.advance(10)
    assert b.allow()
    b.release()
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()


def test_healthy_period_forgives_past_ejections() -> None:
    clock = ManualClock()
    b = CircuitBreaker("m", CFG, clock)
    _calls(b, 4, ok=False)
    clock.advance(10)
    _calls(b, 2, ok=True)  # two probes close it
    assert b.state is BreakerState.CLOSED
    _calls(b, 4, ok=False)  # soon after: the second ejection is longer
    assert b.snapshot().open_until - clock() == 20
    clock.advance(20)
    _calls(b, 2, ok=True)
    clock.advance(CFG.forgive_after_s + 1)
    _calls(b, 4, ok=False)  # long healthy: back to the base ejection
    assert b.snapshot().open_until - clock() == 10


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        BreakerConfig(window=3, min_calls=5)
