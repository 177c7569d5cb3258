"""Which model serves a call, and why: overrides, locks, stickiness, SLA filters and auto-selection.

Selection reads only memory (state, cached scores, breakers, sticky map) and must stay within tens of
microseconds on the call path: auto-selection verdicts are computed once per score snapshot (and
pre-computed for every persona when scores are refreshed), and the per-candidate breakdown of a
decision is only materialised when something reads it (the event writer, a subscriber, explain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from router.breaker import BreakerBoard
from router.catalog import Catalog
from router.clock import Clock
from router.context import CallContext
from router.overrides import Override
from router.personas import PersonaSLA
from router.roles import Role
from router.scoring import RoleScores, ScoreBreakdown
from router.state import RoutingState
from router.sticky import StickyChoice, StickyMap
from router.telemetry import TelemetryAggregator

Verdicts = tuple[tuple["CandidateVerdict", ...], "float | None"]


class Source:
    """Why the chosen model was chosen (the `source` field of a selection)."""

    LOCKED_OVERRIDE = "locked_override"
    STICKY = "sticky"
    OVERRIDE = "override"
    PROFILE = "profile"
    AUTO = "auto"
    STALE_TELEMETRY = "stale_telemetry"
    NO_ELIGIBLE = "no_eligible_candidate"
    NONE = "none"


class CandidateVerdict(NamedTuple):
    model: str
    eligible: bool
    reasons: tuple[str, ...]  # why it was filtered out (empty when eligible)
    telemetry_age_s: float | None
    breakdown: ScoreBreakdown | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "eligible": self.eligible,
            "filtered": list(self.reasons),
            "telemetry_age_s": self.telemetry_age_s,
            "breakdown": None if self.breakdown is None else self.breakdown.to_dict(),
        }


@dataclass(slots=True, eq=False)
class Selection:
    """A routing decision. Read-only by convention (not frozen: it is built on every call)."""

    role: Role
    chosen: str  # "" when no model may serve the call at all
    order: tuple[str, ...]  # failover order, chosen first
    source: str
    rationale: str
    mode: str
    auto_enabled: bool
    override: Override | None
    config_version: int
    ts: float
    tenant: str | None
    persona: str | None
    conversation_id: str | None
    verdicts: Verdicts | Callable[[], Verdicts]  # built on first read

    def _verdicts(self) -> Verdicts:
        v = self.verdicts
        if callable(v):
            v = self.verdicts = v()
        return v

    @property
    def candidates(self) -> tuple[CandidateVerdict, ...]:
        return self._verdicts()[0]

    @property
    def telemetry_age_s(self) -> float | None:
        """Age of the freshest telemetry among the candidates."""
        return self._verdicts()[1]

    @property
    def locked(self) -> bool:
        return self.override is not None and self.override.locked

    def to_payload(self) -> dict[str, Any]:
        ov = self.override
        return {
            "role": self.role.value,
            "chosen": self.chosen,
            "order": list(self.order),
            "source": self.source,
            "rationale": self.rationale,
            "mode": self.mode,
            "auto_selection": self.auto_enabled,
            "override": None
            if ov is None
            else {"scope": ov.scope.value, "subject": ov.subject, "model": ov.model, "locked": ov.locked},
            "locked": self.locked,
            "telemetry_age_s": self.telemetry_age_s,
            "candidates": [c.to_dict() for c in self.candidates],
            "config_version": self.config_version,
            "tenant": self.tenant,
            "persona": self.persona,
            "conversation_id": self.conversation_id,
            "ts": self.ts,
        }


def _plain_verdicts(
    pool: tuple[str, ...],
    seen: list[float | None],
    now: float,
    reasons: dict[str, list[str]],
    scores: RoleScores | None,
) -> Callable[[], Verdicts]:
    """Verdicts of a decision that filtered nothing but safety (sticky, locked, profile order)."""

    def build() -> Verdicts:
        out, freshest = [], None
        for m, ts in zip(pool, seen, strict=True):
            age = None if ts is None else max(0.0, now - ts)
            if age is not None and (freshest is None or age < freshest):
                freshest = age
            why = reasons.get(m)
            out.append(
                CandidateVerdict(
                    m,
                    why is None,
                    () if why is None else tuple(why),
                    age,
                    None if scores is None else scores.by_model.get(m),
                )
            )
        return tuple(out), freshest

    return build


def _auto_verdicts(
    pool: tuple[str, ...], ages: list[float | None], why: tuple[tuple[str, ...], ...], scores: RoleScores
) -> Callable[[], Verdicts]:
    def build() -> Verdicts:
        out = tuple(
            CandidateVerdict(m, not why[i], why[i], ages[i], scores.by_model.get(m)) for i, m in enumerate(pool)
        )
        return out, min((a for a in ages if a is not None), default=None)

    return build


class Selector:
    def __init__(
        self,
        catalog: Catalog,
        state: RoutingState,
        telemetry: TelemetryAggregator,
        breakers: BreakerBoard,
        sticky: StickyMap,
        clock: Clock,
        scores: Callable[[Role], RoleScores],
        cached_scores: Callable[[Role], RoleScores | None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.state = state
        self.telemetry = telemetry
        self.breakers = breakers
        self.sticky = sticky
        self.clock = clock
        self._scores = scores
        self._cached_scores = cached_scores or (lambda _role: None)

    def select(self, role: Role, ctx: CallContext, *, dry_run: bool = False) -> Selection:
        now = self.clock()
        state = self.state
        profile = state.profile(role)
        override = state.overrides.resolve(role, ctx)
        sla = state.personas.get(ctx.persona) if ctx.persona is not None else None
        pool = profile.candidates
        base = pool[0]
        if override is not None and override.model != base:
            base = override.model
            pool = (base, *(m for m in pool if m != base))
        reasons: dict[str, list[str]] = {}
        notes: list[str] = []
        last_seen = self.telemetry.last_seen

        allowed = pool
        if sla is not None and sla.safety:
            kept = []
            for m in pool:
                entry = self.catalog.get(m)
                missing = sla.safety - (entry.safety if entry is not None else frozenset())
                if missing:
                    reasons[m] = [f"lacks required safety: {', '.join(sorted(missing))}"]
                else:
                    kept.append(m)
            allowed = tuple(kept)
        conv = ctx.conversation_id

        def finish(
            chosen: str,
            source: str,
            rationale: str,
            verdicts: Callable[[], Verdicts] | None = None,
            ranked: list[str] | None = None,
        ) -> Selection:
            if ranked:
                order = [chosen, *(m for m in ranked if m != chosen)]
                order += [m for m in allowed if m not in order]
            elif chosen:
                order = [chosen, *(m for m in allowed if m != chosen)]
            else:
                order = []
            if verdicts is None:
                verdicts = _plain_verdicts(
                    pool, [last_seen.get((role, m)) for m in pool], now, reasons, self._cached_scores(role)
                )
            if notes:
                rationale = rationale + "; " + "; ".join(notes)
            if not dry_run and conv and chosen and source != Source.STICKY:
                self.sticky.put(StickyChoice(conv, role, chosen, state.version, source, now, ctx.tenant, ctx.persona))
            return Selection(
                role,
                chosen,
                tuple(order),
                source,
                rationale,
                state.mode.value,
                state.auto_selection,
                override,
                state.version,
                now,
                ctx.tenant,
                ctx.persona,
                conv,
                verdicts,
            )

        if not allowed:
            return finish("", Source.NONE, "no model of the role meets the persona's safety requirements")

        if override is not None and override.locked:
            if override.model in allowed:
                return finish(
                    override.model,
                    Source.LOCKED_OVERRIDE,
                    f"locked {override.scope.value} override for {override.subject!r}: auto-selection does not move it",
                )
            notes.append(f"locked override {override.model} lacks the persona's safety requirements")

        if conv:
            sticky = self.sticky.get(conv, role)
            if sticky is not None:
                if sticky.config_version != state.version:
                    notes.append("configuration changed since the conversation's choice: re-selected")
                elif sticky.model not in allowed:
                    notes.append(f"conversation's model {sticky.model} is no longer a candidate")
                elif self.breakers.is_open(sticky.model):
                    notes.append(f"conversation's model {sticky.model} is ejected (circuit open): moved")
                elif (state.auto_selection and sticky.reason == "failover"
                      and self._below_floor(role, sticky.model, sla)):
                    # a failover stood in for the eligible models: it keeps no conversation it may not serve
                    notes.append(f"conversation's model {sticky.model} (a failover) is below the persona's quality "
                                 "floor: re-selected")
                else:
                    return finish(
                        sticky.model, Source.STICKY, f"conversation keeps {sticky.model} (chosen by {sticky.reason})"
                    )

        default = base if base in allowed else allowed[0]
        default_source = Source.OVERRIDE if override is not None and default == override.model else Source.PROFILE
        if not state.auto_selection:
            return finish(
                default,
                default_source,
                "auto-selection disabled: " + ("override" if default_source == Source.OVERRIDE else "profile primary"),
            )

        # Auto-selection: SLA filters first, then rank. The verdicts depend only on the score snapshot,
        # the configuration, the persona, the candidates' freshness and their breakers: cached on that.
        policy = state.policy
        scores = self._scores(role)
        ages: list[float | None] = []
        fresh_bits = open_bits = allowed_bits = 0
        for i, m in enumerate(pool):
            ts = last_seen.get((role, m))
            age = None if ts is None else max(0.0, now - ts)
            ages.append(age)
            if age is not None and age <= policy.stale_after_s:
                fresh_bits |= 1 << i
            if self.breakers.is_open(m):
                open_bits |= 1 << i
            if m not in reasons:
                allowed_bits |= 1 << i
        key = (state.version, state.mode, ctx.persona, pool, fresh_bits, open_bits)
        decision = scores.decisions.get(key)
        if decision is None:
            decision = self._decide(pool, allowed, sla, scores, reasons, fresh_bits, open_bits, policy.stale_after_s)
            if len(scores.decisions) >= 4096:
                scores.decisions.clear()
            scores.decisions[key] = decision
        why, ranked, rationale = decision
        verdicts = _auto_verdicts(pool, ages, why, scores)
        if not fresh_bits & allowed_bits:
            freshest = min((a for a in ages if a is not None), default=None)
            age_txt = "no telemetry" if freshest is None else f"freshest is {freshest:.0f} s old"
            return finish(
                default,
                Source.STALE_TELEMETRY,
                f"telemetry older than {policy.stale_after_s:.0f} s ({age_txt}): the mode's default profile",
                verdicts,
            )
        if not ranked:
            return finish(
                default,
                Source.NO_ELIGIBLE,
                "no candidate passed the SLA and health filters: the mode's default profile",
                verdicts,
            )
        chosen = ranked[0]
        if override is not None and chosen != override.model:
            rationale += f"; unlocked {override.scope.value} override {override.model} moved by auto-selection"
        return finish(chosen, Source.AUTO, rationale, verdicts, ranked)

    def warm(self, role: Role) -> None:
        """Pre-compute the auto-selection verdicts of every persona (and of none) on the role's profile,
        right after a re-scoring, so that selections on the call path find them cached."""
        if not self.state.auto_selection:
            return
        for persona in (None, *self.state.personas):
            self.select(role, CallContext(persona=persona), dry_run=True)

    def _below_floor(self, role: Role, model: str, sla: PersonaSLA | None) -> bool:
        if sla is None or sla.min_quality is None:
            return False
        scores = self._cached_scores(role)
        breakdown = scores.by_model.get(model) if scores is not None else None
        quality = breakdown.stats.quality if breakdown is not None else None
        return quality is None or quality < sla.min_quality

    def _decide(
        self,
        pool: tuple[str, ...],
        allowed: tuple[str, ...],
        sla: PersonaSLA | None,
        scores: RoleScores,
        reasons: dict[str, list[str]],
        fresh_bits: int,
        open_bits: int,
        stale_after_s: float,
    ) -> tuple[tuple[tuple[str, ...], ...], list[str], str]:
        """Filter and rank: (reasons per pool model, eligible models best first, rationale)."""
        eligible: list[tuple[float, int, str]] = []
        out: list[tuple[str, ...]] = []
        for idx, m in enumerate(pool):
            why = list(reasons.get(m, ()))
            breakdown = scores.by_model.get(m)
            if m in allowed:
                entry = self.catalog.get(m)
                if entry is None:
                    why.append("not in the catalogue")
                elif entry.last_resort:
                    why.append("last resort: failover only")
                if not fresh_bits >> idx & 1:
                    why.append(f"no telemetry in the last {stale_after_s:.0f} s (stale)")
                if open_bits >> idx & 1:
                    why.append("circuit open")
                if sla is not None and not why:
                    stats = breakdown.stats if breakdown is not None else None
                    # quality as scored: capsule-measured where a capsule measured it, else the catalogue's prior
                    q = stats.quality if stats is not None else (None if entry is None else entry.quality)
                    if sla.min_quality is not None and (q is None or q < sla.min_quality):
                        why.append(f"quality {q} below the persona's minimum {sla.min_quality}")
                    if sla.min_success_rate is not None:
                        if stats is None or stats.success_rate is None:
                            why.append("success rate unknown (too few calls)")
                        elif stats.success_rate < sla.min_success_rate:
                            why.append(f"success rate {stats.success_rate:.3f} below the SLA's {sla.min_success_rate}")
                    if sla.latency_p95_ms is not None:
                        if stats is None or stats.latency_source != "telemetry" or stats.latency_ms is None:
                            why.append("p95 latency unknown (too few calls)")
                        elif stats.latency_ms > sla.latency_p95_ms:
                            why.append(
                                f"p95 first output {stats.latency_ms:.0f} ms above the SLA's "
                                f"{sla.latency_p95_ms:.0f} ms"
                            )
                if not why and breakdown is None:
                    why.append("not scored yet")
            if not why:
                assert breakdown is not None
                eligible.append((breakdown.rank_value, -idx, m))
            out.append(tuple(why))
        eligible.sort(reverse=True)
        ranked = [m for _, _, m in eligible]
        rationale = ""
        if ranked:
            rank, _, chosen = eligible[0]
            terms = scores.by_model[chosen].terms
            rationale = (
                f"auto: {chosen} ranked first of {len(eligible)} eligible ({rank:.3f}: cost "
                f"{terms['cost']:.2f}, success {terms['reliability']:.2f}, latency {terms['latency']:.2f}); "
                f"{len(pool) - len(eligible)} filtered"
            )
        return tuple(out), ranked, rationale
