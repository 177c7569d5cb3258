"""Per-minute and per-hour telemetry aggregates as the store keeps them (rows of counters and histograms).

The telemetry writer folds call records into these before each flush, so the store gets about one row
per bucket and writer instead of one per call, and a restart rebuilds the in-memory roll-ups from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from router.telemetry import NBINS, NF, SCALAR_NAMES, CallRecord, add_record


class BucketAccumulator:
    """Per-(role, model, bucket) aggregates awaiting the store, for minute (span 1) or hour (span 60) buckets.

    Only closed buckets are handed out (all of them at shutdown), so the store gets about one row per
    bucket and writer; rows are insert-only and summed when read, so several processes may write.
    """

    def __init__(self, span_minutes: int) -> None:
        self.span = span_minutes
        self._open: dict[tuple[str, str, int], list[Any]] = {}

    def add(self, rec: CallRecord) -> None:
        start = int(rec.ts // (60 * self.span)) * self.span
        key = (rec.role.value, rec.model, start)
        agg = self._open.get(key)
        if agg is None:
            agg = self._open[key] = [[0.0] * NF, [0] * NBINS, [0] * NBINS, rec.ts, rec.unit]
        add_record(agg[0], agg[1], agg[2], rec)
        if rec.ts > agg[3]:
            agg[3] = rec.ts

    def take(self, now: float, *, everything: bool = False) -> list[dict[str, Any]]:
        """Remove and return the rows of closed buckets (all of them when `everything`)."""
        current = int(now // (60 * self.span)) * self.span
        rows = []
        for key in [k for k in self._open if everything or k[2] < current]:
            scalars, lat, ttft, last_ts, unit = self._open.pop(key)
            row: dict[str, Any] = {
                "role": key[0],
                "model": key[1],
                "start_minute": key[2],
                "span_minutes": self.span,
                "unit": unit.value,
                "last_ts": last_ts,
                "latency_hist": np.asarray(lat, dtype=np.int32).tobytes(),
                "ttft_hist": np.asarray(ttft, dtype=np.int32).tobytes(),
            }
            row.update(zip(SCALAR_NAMES, (float(v) for v in scalars), strict=True))
            rows.append(row)
        return rows

    def __len__(self) -> int:
        return len(self._open)


class RollupBuckets:
    """The minute and hour accumulators a telemetry writer keeps."""

    def __init__(self) -> None:
        self.minutes = BucketAccumulator(1)
        self.hours = BucketAccumulator(60)

    def add(self, rec: CallRecord) -> None:
        self.minutes.add(rec)
        self.hours.add(rec)

    def take(self, now: float, *, everything: bool = False) -> list[dict[str, Any]]:
        return self.minutes.take(now, everything=everything) + self.hours.take(now, everything=everything)
