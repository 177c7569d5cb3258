"""router/telemetry.py: roll-ups over 5 m / 1 h / 24 h: counts, success rate, cost per unit (known and unknown),
percentiles."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.catalog import Unit
from router.roles import Role
from router.telemetry import CallRecord, Outcome, TelemetryAggregator

NOW = 1_750_000_000.0


def rec(
    ts: float,
    *,
    outcome: Outcome = Outcome.OK,
    latency: float = 100.0,
    ttft: float | None = 50.0,
    cost: float | None = 0.002,
    model: str = "m",
    units: tuple[float, float] = (900, 100),
    role: Role = Role.DIALOGUE,
    unit: Unit = Unit.TOKENS_1K,
) -> CallRecord:
    return CallRecord(
        ts=ts,
        role=role,
        model=model,
        outcome=outcome,
        latency_ms=latency,
        ttft_ms=ttft,
        units_in=units[0],
        units_out=units[1],
        cost=cost,
        unit=unit,
    )


def test_windows_include_only_their_period() -> None:
    agg = TelemetryAggregator()
    agg.record(rec(NOW - 60))  # in all windows
    agg.record(rec(NOW - 1800))  # 1 h and 24 h
    agg.record(rec(NOW - 20 * 3600))  # 24 h only
    agg.record(rec(NOW - 30 * 3600))  # nowhere
    assert [agg.rollup(Role.DIALOGUE, "m", w, NOW).calls for w in ("5m", "1h", "24h")] == [1, 2, 3]


def test_success_rate_excludes_cancelled_and_counts_outcomes() -> None:
    agg = TelemetryAggregator()
    for outcome in (Outcome.OK, Outcome.OK, Outcome.OK, Outcome.TIMEOUT, Outcome.CANCELLED, Outcome.REFUSAL):
        agg.record(rec(NOW, outcome=outcome))
    r = agg.rollup(Role.DIALOGUE, "m", "5m", NOW)
    assert r.calls == 6 and r.success_rate == pytest.approx(3 / 5)
    assert r.outcomes["timeout"] == 1 and r.outcomes["refusal"] == 1 and r.outcomes["cancelled"] == 1


def test_cost_per_1k_tokens_and_unknown_cost_kept_apart() -> None:
    agg = TelemetryAggregator()
    agg.record(rec(NOW, cost=0.002, units=(900, 100)))
    agg.record(rec(NOW, cost=0.004, units=(1500, 500)))
    agg.record(rec(NOW, cost=None, units=(10_000, 10_000)))  # unknown price: not counted as free
    r = agg.rollup(Role.DIALOGUE, "m", "5m", NOW)
    assert r.cost_total == pytest.approx(0.006)
    assert r.cost_per_unit == pytest.approx(0.006 / 3000 * 1000)
    assert r.cost_unknown_calls == 1
    assert r.to_dict()["cost_per_1k_tokens"] == pytest.approx(r.cost_per_unit)


def test_only_unknown_costs_give_no_cost_figure() -> None:
    agg = TelemetryAggregator()
    agg.record(rec(NOW, cost=None))
    r = agg.rollup(Role.DIALOGUE, "m", "5m", NOW)
    assert r.cost_per_unit is None and r.cost_unknown_calls == 1


def test_speech_units_are_per_second_and_per_character() -> None:
    agg = TelemetryAggregator()
    agg.record(rec(NOW, role=Role.SPEECH_RECOGNITION, unit=Unit.AUDIO_SECOND, units=(30, 0), cost=0.003))
    r = agg.rollup(Role.SPEECH_RECOGNITION, "m", "5m", NOW)
    assert (r.unit, r.cost_per_unit) == ("audio_second", pytest.approx(0.0001))


def test_percentiles_are_within_a_bin() -> None:
    agg = TelemetryAggregator()
    for ms in range(1, 1001):
        agg.record(rec(NOW, latency=float(ms), ttft=float(ms) / 2))
    r = agg.rollup(Role.DIALOGUE, "m", "5m", NOW)
    assert r.latency_p50_ms == pytest.approx(500, rel=0.08)
    assert r.latency_p95_ms == pytest.approx(950, rel=0.08)
    assert r.first_output_p95_ms == pytest.approx(475, rel=0.08)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=200_000.0, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_are_ordered_and_bounded(latencies: list[float]) -> None:
    agg = TelemetryAggregator()
    for ms in latencies:
        agg.record(rec(NOW, latency=ms))
    r = agg.rollup(Role.DIALOGUE, "m", "5m", NOW)
    assert r.latency_p50_ms is not None and r.latency_p95_ms is not None
    assert r.latency_p50_ms <= r.latency_p95_ms
    assert r.latency_p95_ms <= max(max(latencies), 1.0) * 1.15


def test_last_ts_and_unknown_series() -> None:
    agg = TelemetryAggregator()
    assert agg.last_ts(Role.DIALOGUE, "m") is None
    assert agg.rollup(Role.DIALOGUE, "m", "1h", NOW).calls == 0
    agg.record(rec(NOW - 10))
    agg.record(rec(NOW - 100))
    assert agg.last_ts(Role.DIALOGUE, "m") == NOW - 10
    with pytest.raises(ValueError):
        agg.rollup(Role.DIALOGUE, "m", "2h", NOW)

