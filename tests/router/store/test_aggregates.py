"""router/store/aggregates.py: the per-minute and per-hour buckets the store is written from."""

from __future__ import annotations

from router.catalog import Unit
from router.roles import Role
from router.store.aggregates import BucketAccumulator
from router.telemetry import CallRecord, Outcome

NOW = 1_750_000_000.0


def rec(ts: float) -> CallRecord:
    return CallRecord(ts=ts, role=Role.DIALOGUE, model="m", outcome=Outcome.OK, latency_ms=100.0, ttft_ms=50.0,
                      units_in=900, units_out=100, cost=0.002, unit=Unit.TOKENS_1K)


def test_bucket_accumulator_releases_only_closed_buckets() -> None:
    acc = BucketAccumulator(1)
    minute_start = (NOW // 60) * 60
    acc.add(rec(minute_start - 30))
    acc.add(rec(minute_start + 5))
    rows = acc.take(minute_start + 10)
    assert [(r["start_minute"], r["span_minutes"]) for r in rows] == [(int(minute_start // 60) - 1, 1)]
    assert len(acc) == 1
    assert [r["calls"] for r in acc.take(minute_start + 10, everything=True)] == [1.0]
    hours = BucketAccumulator(60)
    hours.add(rec(NOW - 7200))
    hours.add(rec(NOW - 7100))
    assert [r["calls"] for r in hours.take(NOW)] == [2.0]
