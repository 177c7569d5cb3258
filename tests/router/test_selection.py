"""router/selection.py: precedence, locks, stickiness, stale telemetry, SLA filters and auto-selection ranking."""

from __future__ import annotations

import pytest

from router import CallContext, Role, Topic
from router.clock import ManualClock
from router.modes import SelectionWeights
from tests.router.router_testkit import chat_entry, collect, drain, feed, make_router, with_settings


def ENTRIES():  # noqa: N802 - price per 1k (in, out): cheap < mid < dear
    return [
        chat_entry("dear", price=(0.0025, 0.01), quality=0.9, safety={"content_filter"}),
        chat_entry("mid", price=(0.0008, 0.004), quality=0.8, safety={"content_filter"}),
        chat_entry("cheap", price=(0.00015, 0.0006), quality=0.7),
        chat_entry("mystery", price=None, quality=0.9),
        chat_entry("offline", price=(0.0, 0.0), quality=0.05, last_resort=True),
    ]


def _router(clock: ManualClock, auto: bool = True, **kw):
    return make_router(
        ENTRIES(),
        ("dear", "mid", "cheap", "mystery", "offline"),
        clock=clock,
        settings=with_settings(auto_selection=auto, **kw),
    )


def _fresh(router, **ttft) -> None:
    for model in ("dear", "mid", "cheap", "mystery"):
        feed(router, model, 20, ttft_ms=ttft.get(model, 400.0))
    router.rescore()


async def test_precedence_persona_over_tenant_over_default(clock: ManualClock) -> None:
    r = _router(clock, auto=False)
    await r.admin.put_override("tenant", "acme", Role.DIALOGUE, "mid", "t")
    await r.admin.put_override("persona", "nurse", Role.DIALOGUE, "cheap", "t")
    assert r.select(Role.DIALOGUE, CallContext()).chosen == "dear"
    assert r.select(Role.DIALOGUE, CallContext(tenant="acme")).chosen == "mid"
    both = r.select(Role.DIALOGUE, CallContext(tenant="acme", persona="nurse"))
    assert (both.chosen, both.source, both.override.scope.value) == ("cheap", "override", "persona")
    assert r.select(Role.DIALOGUE, CallContext(tenant="other", persona="nurse")).chosen == "cheap"
    # the rest of the profile stays behind the override, in order, for failover
    assert both.order == ("cheap", "dear", "mid", "mystery", "offline")


async def test_auto_selection_picks_the_cheapest_healthy_candidate(clock: ManualClock) -> None:
    r = _router(clock)
    _fresh(r)
    sel = r.select(Role.DIALOGUE, CallContext())
    assert (sel.chosen, sel.source) == ("cheap", "auto")
    by_model = {c.model: c for c in sel.candidates}
    assert "last resort: failover only" in by_model["offline"].reasons
    assert by_model["cheap"].breakdown.terms["cost"] == 1.0
    # unknown price: kept eligible but with a zero cost term, and said so
    assert by_model["mystery"].breakdown.terms["cost"] == 0.0
    assert any("cost unknown" in n for n in by_model["mystery"].breakdown.notes)
    assert sel.order[0] == "cheap" and sel.order[-1] == "offline"


async def test_selection_weights_are_configurable(clock: ManualClock) -> None:
    r = _router(clock, selection_weights=SelectionWeights(cost=0.0, success=0.0, latency=1.0))
    _fresh(r, dear=200.0, mid=600.0, cheap=900.0, mystery=700.0)
    assert r.select(Role.DIALOGUE, CallContext()).chosen == "dear"


async def test_auto_never_moves_a_locked_choice_but_moves_an_unlocked_one(clock: ManualClock) -> None:
    r = _router(clock)
    _fresh(r)
    await r.admin.put_override("tenant", "acme", Role.DIALOGUE, "dear", "t", locked=False)
    sel = r.select(Role.DIALOGUE, CallContext(tenant="acme"))
    assert sel.chosen == "cheap" and "unlocked tenant override dear moved" in sel.rationale
    await r.admin.put_override("tenant", "acme", Role.DIALOGUE, "dear", "t", locked=True)
    sel = r.select(Role.DIALOGUE, CallContext(tenant="acme"))
    assert (sel.chosen, sel.source, sel.locked) == ("dear", "locked_override", True)


async def test_stale_telemetry_falls_back_to_the_mode_default_with_reason(clock: ManualClock) -> None:
    r = _router(clock)
    _fresh(r)
    assert r.select(Role.DIALOGUE, CallContext()).chosen == "cheap"
    clock.advance(15 * 60 + 1)
    r.rescore()
    sel = r.select(Role.DIALOGUE, CallContext())
    assert (sel.chosen, sel.source) == ("dear", "stale_telemetry")
    assert "older than 900 s" in sel.rationale and sel.telemetry_age_s == pytest.approx(901, abs=1)
    assert all(any("stale" in why for why in c.reasons) for c in sel.candidates if c.model != "offline")


async def test_just_fresh_enough_telemetry_still_drives_selection(clock: ManualClock) -> None:
    r = _router(clock)
    _fresh(r)
    clock.advance(15 * 60 - 1)
    assert r.select(Role.DIALOGUE, CallContext()).source == "auto"


async def test_only_stale_candidates_are_filtered(clock: ManualClock) -> None:
    r = _router(clock)
    feed(r, "cheap", 20, age_s=3600)
    feed(r, "mid", 20)
    r.rescore()
    sel = r.select(Role.DIALOGUE, CallContext())
    assert sel.chosen == "mid"
    assert any("stale" in why for why in next(c for c in sel.candidates if c.model == "cheap").reasons)


async def test_sla_filters_latency_success_quality_and_safety(clock: ManualClock) -> None:
    r = _router(clock)
    feed(r, "dear", 20, ttft_ms=300)
    feed(r, "mid", 20, ttft_ms=350)
    feed(r, "cheap", 20, ttft_ms=2000)  # too slow for the persona
    feed(r, "mystery", 18, ttft_ms=100)
    feed(r, "mystery", 2, ok=False)  # 90 % success
    r.rescore()
    await r.admin.put_persona(
        "concierge",
        {"latency_p95_ms": 800, "min_success_rate": 0.95, "safety": ["content_filter"], "min_quality": 0.75},
        "t",
    )
    sel = r.select(Role.DIALOGUE, CallContext(persona="concierge"))
    assert sel.chosen == "mid"
    reasons = {c.model: " ".join(c.reasons) for c in sel.candidates}
    assert "lacks required safety: content_filter" in reasons["cheap"]
    assert "lacks required safety" in reasons["mystery"]
    assert reasons["dear"] == "" and reasons["mid"] == ""
    # safety is a hard filter: models without it are not even in the failover order
    assert "cheap" not in sel.order and "mystery" not in sel.order
    await r.admin.put_persona("fast", {"latency_p95_ms": 800, "min_success_rate": 0.95}, "t")
    reasons = {c.model: " ".join(c.reasons) for c in r.select(Role.DIALOGUE, CallContext(persona="fast")).candidates}
    assert "above the SLA's 800 ms" in reasons["cheap"]
    assert "below the SLA's 0.95" in reasons["mystery"]


async def test_safety_applies_even_without_auto_selection(clock: ManualClock) -> None:
    r = make_router(ENTRIES(), ("cheap", "mid"), clock=clock, settings=with_settings(auto_selection=False))
    await r.admin.put_persona("kids", {"safety": ["content_filter"]}, "t")
    sel = r.select(Role.DIALOGUE, CallContext(persona="kids"))
    assert sel.chosen == "mid" and sel.order == ("mid",)


async def test_nothing_meets_safety_means_a_clear_failure(clock: ManualClock) -> None:
    from router import AllCandidatesFailed

    r = make_router(ENTRIES(), ("cheap",), clock=clock)
    await r.admin.put_persona("kids", {"safety": ["content_filter"]}, "t")
    with pytest.raises(AllCandidatesFailed, match="safety"):
        await collect(r, CallContext(persona="kids"))


async def test_no_eligible_candidate_uses_default_with_reason(clock: ManualClock) -> None:
    r = _router(clock)
    _fresh(r, dear=3000, mid=3000, cheap=3000, mystery=3000)
    await r.admin.put_persona("strict", {"latency_p95_ms": 500}, "t")
    sel = r.select(Role.DIALOGUE, CallContext(persona="strict"))
    assert (sel.chosen, sel.source) == ("dear", "no_eligible_candidate")


async def test_conversation_keeps_its_model_even_when_another_ranks_higher(clock: ManualClock) -> None:
    r = _router(clock)
    _fresh(r)
    await r.admin.put_persona("p", {"min_success_rate": 0.9}, "t")
    ctx = CallContext(persona="p", conversation_id="conv")
    assert r.select(Role.DIALOGUE, ctx).chosen == "cheap"
    feed(r, "cheap", 40, ok=False)  # cheap turns bad (but its breaker never saw these)
    r.rescore()
    assert r.select(Role.DIALOGUE, CallContext(persona="p", conversation_id="other")).chosen != "cheap"
    sel = r.select(Role.DIALOGUE, ctx)
    assert (sel.chosen, sel.source) == ("cheap", "sticky")


async def test_open_breaker_moves_a_sticky_conversation(clock: ManualClock) -> None:
    r = _router(clock)
    _fresh(r)
    ctx = CallContext(conversation_id="conv")
    assert r.select(Role.DIALOGUE, ctx).chosen == "cheap"
    b = r.breakers.get("cheap")
    for _ in range(r.state.policy.breaker.min_calls):
        b.allow()
        b.record(ok=False)
    sel = r.select(Role.DIALOGUE, ctx)
    assert sel.chosen != "cheap" and "circuit open" in sel.rationale


async def test_a_failover_below_the_quality_floor_keeps_no_conversation(clock: ManualClock) -> None:
    from router.sticky import StickyChoice

    r = _router(clock)
    _fresh(r)
    await r.admin.put_persona("p", {"min_quality": 0.75}, "t")
    ctx = CallContext(persona="p", conversation_id="conv")
    assert r.select(Role.DIALOGUE, ctx).chosen == "mid"  # cheap (0.7) is below the floor
    # mid failed mid-call and cheap answered: failover stuck the conversation to it
    r.sticky.put(StickyChoice("conv", Role.DIALOGUE, "cheap", r.state.version, "failover", clock(), None, "p"))
    sel = r.select(Role.DIALOGUE, ctx)
    assert sel.chosen == "mid" and "below the persona's quality floor" in sel.rationale
    # a sticky choice the persona may have (no floor) is kept
    r.sticky.put(StickyChoice("conv2", Role.DIALOGUE, "cheap", r.state.version, "failover", clock(), None, None))
    kept = r.select(Role.DIALOGUE, CallContext(conversation_id="conv2"))
    assert (kept.chosen, kept.source) == ("cheap", "sticky")


async def test_configuration_change_releases_sticky_choices(clock: ManualClock) -> None:
    r = _router(clock, auto=False)
    ctx = CallContext(conversation_id="conv")
    assert r.select(Role.DIALOGUE, ctx).chosen == "dear"
    assert r.select(Role.DIALOGUE, ctx).source == "sticky"
    await r.admin.put_profile(Role.DIALOGUE, {"primary": "mid", "fallbacks": ["dear"]}, "t")
    sel = r.select(Role.DIALOGUE, ctx)
    assert sel.chosen == "mid" and "configuration changed" in sel.rationale


async def test_selection_event_carries_the_full_breakdown(clock: ManualClock) -> None:
    r = _router(clock)
    _fresh(r)
    sub = r.bus.subscribe({Topic.SELECTION})
    r.select(Role.DIALOGUE, CallContext(tenant="t", persona="p", conversation_id="c"))
    payload = drain(sub)[0].payload
    assert payload["chosen"] == "cheap" and payload["source"] == "auto" and payload["rationale"]
    assert payload["telemetry_age_s"] == 0.0 and payload["override"] is None and payload["locked"] is False
    assert {c["model"] for c in payload["candidates"]} == {"dear", "mid", "cheap", "mystery", "offline"}
    cheap = next(c for c in payload["candidates"] if c["model"] == "cheap")
    assert set(cheap["breakdown"]["terms"]) == {"quality", "cost", "latency", "reliability"}
    assert cheap["breakdown"]["stats"]["cost_source"] == "telemetry"
    # explain is the same decision, without an event or a sticky choice
    explained = r.explain(Role.DIALOGUE, CallContext(conversation_id="dry"))
    assert explained.chosen == "cheap" and drain(sub) == [] and not r.sticky.known("dry")


async def test_auto_flag_off_uses_profile_order(clock: ManualClock) -> None:
    r = _router(clock, auto=False)
    _fresh(r)
    sel = r.select(Role.DIALOGUE, CallContext())
    assert (sel.chosen, sel.source) == ("dear", "profile")
    await r.admin.set_auto_selection(True, "ops")
    assert r.select(Role.DIALOGUE, CallContext()).chosen == "cheap"
