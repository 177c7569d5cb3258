"""router/scoring.py: composite scores: normalisation among candidates, and safety with zero, missing or unknown
values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.modes import ScoreWeights, SelectionWeights
from router.scoring import CandidateStats, score


def stats(
    model: str, *, q: float | None = 0.8, cost: float | None = 1.0, lat: float | None = 500.0, sr: float | None = 0.99
) -> CandidateStats:
    return CandidateStats(
        model=model,
        quality=q,
        cost_per_unit=cost,
        cost_source="catalogue" if cost is not None else "unknown",
        latency_ms=lat,
        latency_source="telemetry" if lat is not None else "unknown",
        success_rate=sr,
        success_source="telemetry",
        samples=10,
        window="5m",
        last_ts=None,
    )


def test_cheaper_model_gets_proportionally_higher_cost_term() -> None:
    out = score([stats("a", cost=1.0), stats("b", cost=4.0)], ScoreWeights(), SelectionWeights())
    assert out[0].terms["cost"] == 1.0 and out[1].terms["cost"] == pytest.approx(0.25)


def test_weights_decide_between_cheap_and_fast() -> None:
    cands = [stats("cheap", cost=1.0, lat=1000.0), stats("fast", cost=3.0, lat=250.0)]
    by_cost = score(cands, ScoreWeights(quality=0, cost=1, latency=0, reliability=0), SelectionWeights())
    by_latency = score(cands, ScoreWeights(quality=0, cost=0, latency=1, reliability=0), SelectionWeights())
    assert max(by_cost, key=lambda b: b.score).model == "cheap"
    assert max(by_latency, key=lambda b: b.score).model == "fast"


def test_unknown_cost_is_never_treated_as_cheap() -> None:
    out = score([stats("known", cost=5.0), stats("unknown", cost=None)], ScoreWeights(), SelectionWeights())
    unknown = out[1]
    assert unknown.terms["cost"] == 0.0
    assert any("cost unknown" in n for n in unknown.notes)
    assert out[0].terms["cost"] == 1.0


def test_zero_cost_is_free_and_safe() -> None:
    out = score([stats("free", cost=0.0), stats("paid", cost=2.0)], ScoreWeights(), SelectionWeights())
    assert out[0].terms["cost"] == 1.0 and "free model" in out[0].notes
    assert 0.0 <= out[1].terms["cost"] < 1e-6


def test_all_unknown_gives_zero_terms_not_errors() -> None:
    out = score([stats("x", q=None, cost=None, lat=None, sr=None)], ScoreWeights(), SelectionWeights())
    assert out[0].score == 0.0 and len(out[0].notes) == 4


def test_selection_rank_uses_cost_success_latency_weights() -> None:
    out = score(
        [stats("a", cost=1.0, lat=1000.0, sr=1.0)], ScoreWeights(), SelectionWeights(cost=0.5, success=0.3, latency=0.2)
    )
    assert out[0].rank_value == pytest.approx(1.0)


maybe = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e6, allow_nan=False))
unit = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(unit, maybe, maybe, unit), min_size=1, max_size=8),
    st.tuples(*[st.floats(min_value=0, max_value=10, allow_nan=False)] * 4),
)
def test_scores_are_finite_and_bounded_for_any_inputs(rows, w) -> None:
    cands = [stats(f"m{i}", q=q, cost=c, lat=lat, sr=sr) for i, (q, c, lat, sr) in enumerate(rows)]
    for b in score(cands, ScoreWeights(*w), SelectionWeights()):
        assert math.isfinite(b.score) and 0.0 <= b.score <= 1.0 + 1e-9
        assert math.isfinite(b.rank_value) and 0.0 <= b.rank_value <= 1.0 + 1e-9
        assert all(0.0 <= t <= 1.0 + 1e-9 for t in b.terms.values())
