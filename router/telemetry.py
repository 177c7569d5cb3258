"""Call records and their roll-ups over 5 m / 1 h / 24 h per role and model.

Roll-ups are kept in memory as fixed rings of time slots (1-minute slots for the last hour,
15-minute slots for the last day), each holding counters and log-spaced latency histograms, so
recording is O(1) and a roll-up never scans records. The store keeps the same per-minute
aggregates, so a restart (or another process) rebuilds them without reading raw rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from router.catalog import Unit, role_unit
from router.roles import Role


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    REFUSAL = "refusal"
    POLICY_VIOLATION = "policy_violation"
    CANCELLED = "cancelled"  # the caller went away (barge-in); counts for neither success nor failure


WINDOWS: dict[str, int] = {"5m": 300, "1h": 3600, "24h": 86400}

# Scalar counters per slot.
F_CALLS, F_OK, F_ERROR, F_TIMEOUT, F_REFUSAL, F_POLICY, F_CANCELLED = range(7)
F_COST, F_COST_N, F_COST_UNITS, F_UNITS_IN, F_UNITS_OUT, F_LAT_SUM, F_TTFT_N = range(7, 14)
NF = 14
SCALAR_NAMES = (
    "calls",
    "ok",
    "error",
    "timeout",
    "refusal",
    "policy_violation",
    "cancelled",
    "cost_sum",
    "cost_n",
    "cost_units",
    "units_in",
    "units_out",
    "latency_sum",
    "ttft_n",
)
_OUTCOME_FIELD = {
    Outcome.OK: F_OK,
    Outcome.ERROR: F_ERROR,
    Outcome.TIMEOUT: F_TIMEOUT,
    Outcome.REFUSAL: F_REFUSAL,
    Outcome.POLICY_VIOLATION: F_POLICY,
    Outcome.CANCELLED: F_CANCELLED,
}

# Latency histograms: log-spaced bins, 14 % wide, from 1 ms to ~5 min; percentiles are bin midpoints.
NBINS = 96
BIN_RATIO = 1.14
_LOG_RATIO = math.log(BIN_RATIO)


def latency_bin(ms: float) -> int:
    if ms <= 1.0:
        return 0
    return min(NBINS - 1, int(math.log(ms) / _LOG_RATIO))


def percentile(hist: np.ndarray, q: float) -> float | None:
    total = int(hist.sum())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    i = int(np.searchsorted(np.cumsum(hist), rank, side="left"))
    return float(BIN_RATIO ** (i + 0.5))


@dataclass(slots=True)
class CallRecord:
    """One model call (one attempt: a failed-over turn yields one record per model tried). Treat as immutable
    once recorded (not frozen only because frozen dataclasses are slow to build on the hot path)."""

    ts: float  # when the call started, epoch seconds
    role: Role
    model: str
    outcome: Outcome
    latency_ms: float  # total
    ttft_ms: float | None = None  # time to first token / first audio / first partial
    units_in: float = 0.0  # input tokens; audio seconds (ASR); characters (TTS)
    units_out: float = 0.0  # output tokens (LLMs)
    unit: Unit = Unit.TOKENS_1K
    cost: float | None = None  # USD; None when the model's price is unknown
    tenant: str | None = None
    persona: str | None = None
    conversation_id: str | None = None
    units_estimated: bool = False  # the provider reported no usage; units were estimated from text
    source: str = "live"  # live | ingest | probe | remote
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["role"], data["outcome"], data["unit"] = self.role.value, self.outcome.value, self.unit.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        return cls(
            ts=float(data["ts"]),
            role=Role(data["role"]),
            model=str(data["model"]),
            outcome=Outcome(data["outcome"]),
            latency_ms=float(data["latency_ms"]),
            ttft_ms=None if data.get("ttft_ms") is None else float(data["ttft_ms"]),
            units_in=float(data.get("units_in") or 0.0),
            units_out=float(data.get("units_out") or 0.0),
            unit=Unit(data.get("unit") or Unit.TOKENS_1K),
            cost=None if data.get("cost") is None else float(data["cost"]),
            tenant=data.get("tenant"),
            persona=data.get("persona"),
            conversation_id=data.get("conversation_id"),
            units_estimated=bool(data.get("units_estimated")),
            source=str(data.get("source") or "live"),
            error=str(data.get("error") or ""),
        )


def add_record(scalars: Any, lat: Any, ttft: Any, rec: CallRecord) -> None:
    """Add one record into a row of counters and two histograms (numpy rows or plain lists)."""
    scalars[F_CALLS] += 1
    scalars[_OUTCOME_FIELD[rec.outcome]] += 1
    units = rec.units_in + rec.units_out
    if rec.cost is not None:
        scalars[F_COST] += rec.cost
        scalars[F_COST_N] += 1
        scalars[F_COST_UNITS] += units
    scalars[F_UNITS_IN] += rec.units_in
    scalars[F_UNITS_OUT] += rec.units_out
    scalars[F_LAT_SUM] += rec.latency_ms
    lat[latency_bin(rec.latency_ms)] += 1
    if rec.ttft_ms is not None:
        scalars[F_TTFT_N] += 1
        ttft[latency_bin(rec.ttft_ms)] += 1


@dataclass(frozen=True)
class Rollup:
    role: Role
    model: str
    window: str
    calls: int
    ok: int
    outcomes: dict[str, int]
    success_rate: float | None  # ok / (calls - cancelled); None with no judged calls
    cost_total: float  # USD over calls whose cost is known
    cost_unknown_calls: int  # calls whose cost is unknown (explicitly not counted as free)
    cost_per_unit: float | None  # USD per unit (per 1k tokens / audio second / character)
    unit: str
    units_in: float
    units_out: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    first_output_p50_ms: float | None
    first_output_p95_ms: float | None
    last_ts: float | None

    @property
    def judged(self) -> int:
        return self.calls - self.outcomes.get(Outcome.CANCELLED.value, 0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["role"] = self.role.value
        data["cost_per_1k_tokens"] = self.cost_per_unit if self.unit == Unit.TOKENS_1K.value else None
        return data


def make_rollup(
    role: Role,
    model: str,
    window: str,
    scalars: np.ndarray,
    lat: np.ndarray,
    ttft: np.ndarray,
    unit: Unit,
    last_ts: float | None,
) -> Rollup:
    calls = int(scalars[F_CALLS])
    cancelled = int(scalars[F_CANCELLED])
    judged = calls - cancelled
    cost_units = float(scalars[F_COST_UNITS])
    scale = 1000.0 if unit is Unit.TOKENS_1K else 1.0
    return Rollup(
        role=role,
        model=model,
        window=window,
        calls=calls,
        ok=int(scalars[F_OK]),
        outcomes={o.value: int(scalars[f]) for o, f in _OUTCOME_FIELD.items()},
        success_rate=(float(scalars[F_OK]) / judged) if judged > 0 else None,
        cost_total=float(scalars[F_COST]),
        cost_unknown_calls=calls - int(scalars[F_COST_N]),
        cost_per_unit=(float(scalars[F_COST]) / cost_units * scale) if cost_units > 0 else None,
        unit=unit.value,
        units_in=float(scalars[F_UNITS_IN]),
        units_out=float(scalars[F_UNITS_OUT]),
        latency_p50_ms=percentile(lat, 0.50),
        latency_p95_ms=percentile(lat, 0.95),
        first_output_p50_ms=percentile(ttft, 0.50),
        first_output_p95_ms=percentile(ttft, 0.95),
        last_ts=last_ts,
    )


class _Ring:
    """`slots` time slots of `width_s` seconds each; a slot is reused when its period comes round again."""

    __slots__ = ("width", "periods", "scalars", "lat", "ttft")

    def __init__(self, slots: int, width_s: int) -> None:
        self.width = width_s
        self.periods = np.full(slots, -1, dtype=np.int64)
        self.scalars = np.zeros((slots, NF))
        self.lat = np.zeros((slots, NBINS), dtype=np.int64)
        self.ttft = np.zeros((slots, NBINS), dtype=np.int64)

    def _slot(self, period: int) -> int | None:
        i = period % len(self.periods)
        current = self.periods[i]
        if current == period:
            return i
        if current > period:
            return None  # older than the ring remembers
        self.periods[i] = period
        self.scalars[i] = 0
        self.lat[i] = 0
        self.ttft[i] = 0
        return i

    def add(self, rec: CallRecord) -> None:
        i = self._slot(int(rec.ts // self.width))
        if i is None:
            return
        add_record(self.scalars[i], self.lat[i], self.ttft[i], rec)

    def add_aggregate(self, ts: float, scalars: np.ndarray, lat: np.ndarray, ttft: np.ndarray) -> None:
        i = self._slot(int(ts // self.width))
        if i is None:
            return
        self.scalars[i] += scalars
        self.lat[i] += lat
        self.ttft[i] += ttft

    def window(self, now: float, seconds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        newest = int(now // self.width)
        oldest = newest - max(1, seconds // self.width) + 1
        mask = (self.periods >= oldest) & (self.periods <= newest)
        return self.scalars[mask].sum(axis=0), self.lat[mask].sum(axis=0), self.ttft[mask].sum(axis=0)


class _Series:
    __slots__ = ("minutes", "hours", "last_ts", "unit")

    def __init__(self, unit: Unit) -> None:
        self.minutes = _Ring(60, 60)  # 5 m and 1 h windows
        self.hours = _Ring(26, 3600)  # 24 h window (the current hour and the 23 before it)
        self.last_ts: float | None = None
        self.unit = unit


class TelemetryAggregator:
    """In-memory roll-ups per (role, model); the router's selection reads these, never the database."""

    def __init__(self) -> None:
        self._series: dict[tuple[Role, str], _Series] = {}
        self.last_seen: dict[tuple[Role, str], float] = {}  # newest record per (role, model); read-only outside

    def _get(self, role: Role, model: str, unit: Unit) -> _Series:
        series = self._series.get((role, model))
        if series is None:
            series = self._series[(role, model)] = _Series(unit)
        return series

    def record(self, rec: CallRecord) -> None:
        series = self._get(rec.role, rec.model, rec.unit)
        series.minutes.add(rec)
        series.hours.add(rec)
        if series.last_ts is None or rec.ts > series.last_ts:
            series.last_ts = rec.ts
            self.last_seen[(rec.role, rec.model)] = rec.ts

    def add_bucket(
        self,
        role: Role,
        model: str,
        unit: Unit,
        start_minute: int,
        scalars: np.ndarray,
        lat: np.ndarray,
        ttft: np.ndarray,
        last_ts: float | None,
        *,
        ring: str,
    ) -> None:
        """Merge a stored aggregate into the minute ring or the hour ring (start-up rehydration)."""
        series = self._get(role, model, unit)
        target = series.minutes if ring == "minutes" else series.hours
        target.add_aggregate(start_minute * 60.0, scalars, lat, ttft)
        if last_ts is not None and (series.last_ts is None or last_ts > series.last_ts):
            series.last_ts = last_ts
            self.last_seen[(role, model)] = last_ts

    def last_ts(self, role: Role, model: str) -> float | None:
        return self.last_seen.get((role, model))

    def keys(self, role: Role | None = None) -> list[tuple[Role, str]]:
        return [k for k in self._series if role is None or k[0] is role]

    def rollup(self, role: Role, model: str, window: str, now: float) -> Rollup:
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
        series = self._series.get((role, model))
        if series is None:
            zeros = np.zeros(NF)
            empty = np.zeros(NBINS, dtype=np.int64)
            return make_rollup(role, model, window, zeros, empty, empty, role_unit(role), None)
        ring = series.hours if window == "24h" else series.minutes
        scalars, lat, ttft = ring.window(now, WINDOWS[window])
        return make_rollup(role, model, window, scalars, lat, ttft, series.unit, series.last_ts)
