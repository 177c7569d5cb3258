"""Promotion gates: a model becomes the role's primary only after its capsules pass, and a person approves.

`propose` runs every capsule of the role over the candidate (purpose "gate"), and judges the summaries against
the role's thresholds (quality, p95 latency, refusal accuracy where the capsules test refusals): the candidate
is `promotable` or `refused`, with its reasons. `approve` (an explicit API call; the actor is recorded) writes
the profile through the admin operations (persisted, audited, announced as `model.profile.updated`, which every
worker process adopts) with the candidate as primary and the former primary first among its fallbacks; `stage`
tries a promotable candidate on one tenant first (a tenant override). Every step is audited and published as
`model.promotion`.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace
from typing import Any

from router.capsules.library import CapsuleLibrary
from router.capsules.runner import CapsuleRunner, RunReport
from router.events import Topic
from router.modes import DeploymentMode
from router.roles import Role
from router.store.benchmarks import BenchmarkResults, Promotion


class GateError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Thresholds:
    min_quality: float = 0.6
    max_latency_p95_ms: float = 5000.0
    min_refusal_accuracy: float = 0.8

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


DEFAULT_THRESHOLDS: dict[Role, Thresholds] = {
    Role.SPEECH_RECOGNITION: Thresholds(min_quality=0.85, max_latency_p95_ms=1500.0),
    Role.SPEECH_SYNTHESIS: Thresholds(min_quality=0.5, max_latency_p95_ms=3000.0),
}


def thresholds_for(role: Role) -> Thresholds:
    return DEFAULT_THRESHOLDS.get(role, Thresholds())


def judge(reports: list[RunReport], model: str, thresholds: Thresholds) -> list[str]:
    """The reasons a model fails its gate (none: it passes)."""
    reasons = []
    if not reports:
        return ["no capsule measures this role"]
    for report in reports:
        s = report.summaries[model]
        key = f"{report.run.capsule}@{report.run.version}"
        if s.quality < thresholds.min_quality:
            reasons.append(f"{key}: quality {s.quality:.3f} < {thresholds.min_quality}")
        p95 = s.metrics.get("latency_p95_ms")
        if p95 is not None and p95 > thresholds.max_latency_p95_ms:
            reasons.append(f"{key}: p95 latency {p95:.0f} ms > {thresholds.max_latency_p95_ms:.0f} ms")
        refusal = s.metrics.get("refusal_accuracy")
        if refusal is not None and refusal < thresholds.min_refusal_accuracy:
            reasons.append(f"{key}: refusal accuracy {refusal:.2f} < {thresholds.min_refusal_accuracy}")
    return reasons


class PromotionGate:
    def __init__(self, router: Any, runner: CapsuleRunner, library: CapsuleLibrary, results: BenchmarkResults) -> None:
        self.router = router
        self.runner = runner
        self.library = library
        self.results = results

    async def propose(self, role: Role, model: str, actor: str, mode: DeploymentMode | None = None) -> Promotion:
        entry = self.router.catalog.get(model)
        if entry is None or not entry.serves(role):
            raise GateError(422, f"model {model!r} is not in the catalogue for role {role.value!r}")
        mode = mode or self.router.state.mode
        capsules = await self.library.for_role(role)
        reports = [await self.runner.run(c, role=role, models=[model], mode=mode, purpose="gate") for c in capsules]
        limits = thresholds_for(role)
        reasons = judge(reports, model, limits)
        verdict = {"thresholds": limits.to_dict(), "reasons": reasons,
                   "runs": [{"run_id": r.id, "capsule": r.run.capsule, "version": r.run.version,
                             **r.summaries[model].to_dict()} for r in reports],
                   "incumbent": self.router.state.profile(role, mode).primary}
        promotion = Promotion(uuid.uuid4().hex[:16], self.router.clock(), role.value, mode.value, model,
                              "refused" if reasons else "promotable", verdict, actor)
        await asyncio.to_thread(self.results.put_promotion, promotion)
        await self.router.admin.record(actor, "promotion.propose", f"{mode.value}/{role.value}/{model}",
                                       {"promotion_id": promotion.id, "status": promotion.status,
                                        "reasons": reasons})
        self.router.bus.publish(Topic.PROMOTION, promotion.to_dict())
        return promotion

    async def _promotable(self, promotion_id: str) -> Promotion:
        p = await asyncio.to_thread(self.results.get_promotion, promotion_id)
        if p is None:
            raise GateError(404, f"no promotion {promotion_id!r}")
        if p.status != "promotable":
            why = "; ".join(p.verdict.get("reasons", [])) if p.status == "refused" else p.status
            raise GateError(409, f"promotion {promotion_id} is not promotable ({p.status}: {why})")
        return p

    async def approve(self, promotion_id: str, actor: str) -> Promotion:
        p = await self._promotable(promotion_id)
        role, mode = Role(p.role), DeploymentMode(p.mode)
        if not await asyncio.to_thread(self.results.decide_promotion, p.id, "promotable", "approved", actor,
                                       self.router.clock()):
            raise GateError(409, f"promotion {promotion_id} was decided meanwhile")
        current = self.router.state.profile(role, mode)
        fallbacks = [m for m in (current.primary, *current.fallbacks) if m != p.model]
        profile = {**current.to_dict(), "primary": p.model, "fallbacks": fallbacks}
        await self.router.admin.put_profile(role, profile, actor, mode)
        await self.router.admin.record(actor, "promotion.approve", f"{mode.value}/{role.value}/{p.model}",
                                       {"promotion_id": p.id, "previous_primary": current.primary})
        approved = replace(p, status="approved", decided_by=actor, decided_at=self.router.clock())
        self.router.bus.publish(Topic.PROMOTION, approved.to_dict())
        return approved

    async def stage(self, promotion_id: str, tenant: str, actor: str) -> Promotion:
        """The candidate serves one tenant (an override) while the promotion stays open for approval."""
        p = await self._promotable(promotion_id)
        await self.router.admin.put_override("tenant", tenant, p.role, p.model, actor,
                                             reason=f"staging promotion {p.id}")
        await self.router.admin.record(actor, "promotion.stage", f"{p.mode}/{p.role}/{p.model}",
                                       {"promotion_id": p.id, "tenant": tenant})
        self.router.bus.publish(Topic.PROMOTION, {**p.to_dict(), "staged_tenant": tenant})
        return p
