"""Composite model scores per role, with every term's raw value, normalised value and caveats.

Terms are normalised among the role's candidates: quality and reliability as a share of the best,
cost and latency as the best value over this one (i.e. normalised 1/x). Unknown values score 0 and
say so in `notes` (an unknown price is never treated as cheap); zero cost or latency is floored so
that nothing divides by zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from router.catalog import ModelEntry
from router.modes import ScoreWeights, SelectionWeights
from router.roles import Role
from router.telemetry import Rollup, TelemetryAggregator

COST_FLOOR = 1e-9  # USD per unit: what "free" counts as, so 1/cost stays finite
LATENCY_FLOOR_MS = 1.0


@dataclass(frozen=True)
class CandidateStats:
    model: str
    quality: float | None
    cost_per_unit: float | None
    cost_source: str  # telemetry | catalogue | unknown
    latency_ms: float | None  # p95 time to first output
    latency_source: str  # telemetry | catalogue | unknown
    success_rate: float | None
    success_source: str  # telemetry | unknown
    samples: int  # judged calls in `window`
    window: str | None  # the roll-up window the telemetry figures come from
    last_ts: float | None  # newest telemetry for the model in this role

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ScoreBreakdown:
    model: str
    score: float  # composite, 0..1
    rank_value: float  # auto-selection's cost/success/latency blend, 0..1
    terms: dict[str, float]  # normalised: quality, cost, latency, reliability
    stats: CandidateStats
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Built once per score refresh and shared by every selection event: treat as read-only."""
        return self._dict

    @cached_property
    def _dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "score": round(self.score, 6),
            "rank_value": round(self.rank_value, 6),
            "terms": {k: round(v, 6) for k, v in self.terms.items()},
            "stats": self.stats.to_dict(),
            "notes": list(self.notes),
        }


def candidate_stats(
    role: Role, entry: ModelEntry, telemetry: TelemetryAggregator, now: float, min_samples: int,
    measured_quality: float | None = None,
) -> CandidateStats:
    """Telemetry when there is enough of it (5 m, else 1 h), else catalogue priors, else unknown; quality as a
    benchmark capsule measured it where one did, else the catalogue's prior."""
    chosen: Rollup | None = None
    for window in ("5m", "1h"):
        rollup = telemetry.rollup(role, entry.name, window, now)
        if rollup.judged >= min_samples:
            chosen = rollup
            break
    last_ts = telemetry.last_ts(role, entry.name)
    if chosen is not None and chosen.cost_per_unit is not None:
        cost, cost_src = chosen.cost_per_unit, "telemetry"
    elif entry.price is not None:
        cost, cost_src = entry.price.blended(role), "catalogue"
    else:
        cost, cost_src = None, "unknown"
    latency = None if chosen is None else (chosen.first_output_p95_ms or chosen.latency_p95_ms)
    if latency is not None:
        lat_src = "telemetry"
    elif entry.expected_first_output_ms is not None:
        latency, lat_src = entry.expected_first_output_ms, "catalogue"
    else:
        lat_src = "unknown"
    success = None if chosen is None else chosen.success_rate
    return CandidateStats(
        model=entry.name,
        quality=entry.quality if measured_quality is None else measured_quality,
        cost_per_unit=cost,
        cost_source=cost_src,
        latency_ms=latency,
        latency_source=lat_src,
        success_rate=success,
        success_source="telemetry" if success is not None else "unknown",
        samples=0 if chosen is None else chosen.judged,
        window=None if chosen is None else chosen.window,
        last_ts=last_ts,
    )


def _share_of_best(values: list[float | None]) -> list[float]:
    known = [v for v in values if v is not None and v > 0]
    best = max(known) if known else 0.0
    return [0.0 if v is None or best <= 0 else max(0.0, v) / best for v in values]


def _inverse(values: list[float | None], floor: float) -> list[float]:
    known = [max(v, floor) for v in values if v is not None]
    best = min(known) if known else 0.0
    return [0.0 if v is None else best / max(v, floor) for v in values]


def score(stats: list[CandidateStats], weights: ScoreWeights, selection: SelectionWeights) -> list[ScoreBreakdown]:
    """Score every candidate of one role against the others."""
    quality = _share_of_best([s.quality for s in stats])
    cost = _inverse([s.cost_per_unit for s in stats], COST_FLOOR)
    latency = _inverse([s.latency_ms for s in stats], LATENCY_FLOOR_MS)
    reliability = _share_of_best([s.success_rate for s in stats])
    w_total = weights.quality + weights.cost + weights.latency + weights.reliability
    s_total = selection.cost + selection.success + selection.latency
    out = []
    for i, s in enumerate(stats):
        notes = []
        if s.quality is None:
            notes.append("quality unknown: term 0")
        if s.cost_per_unit is None:
            notes.append("cost unknown: term 0 (an unknown price is never assumed cheap)")
        elif s.cost_per_unit == 0:
            notes.append("free model")
        if s.latency_ms is None:
            notes.append("latency unknown: term 0")
        if s.success_rate is None:
            notes.append("success rate unknown: term 0")
        terms = {"quality": quality[i], "cost": cost[i], "latency": latency[i], "reliability": reliability[i]}
        composite = (
            0.0
            if w_total <= 0
            else (
                weights.quality * quality[i]
                + weights.cost * cost[i]
                + weights.latency * latency[i]
                + weights.reliability * reliability[i]
            )
            / w_total
        )
        rank = (
            selection.cost * cost[i] + selection.success * reliability[i] + selection.latency * latency[i]
        ) / s_total
        out.append(ScoreBreakdown(s.model, composite, rank, terms, s, tuple(notes)))
    return out


@dataclass(frozen=True)
class RoleScores:
    role: Role
    computed_at: float
    weights: ScoreWeights
    selection_weights: SelectionWeights
    by_model: dict[str, ScoreBreakdown]
    # Auto-selection verdicts computed against this snapshot, reused until the next one (see selection.py).
    decisions: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "computed_at": self.computed_at,
            "weights": dict(self.weights.__dict__),
            "selection_weights": dict(self.selection_weights.__dict__),
            "candidates": [b.to_dict() for b in sorted(self.by_model.values(), key=lambda b: -b.score)],
        }
