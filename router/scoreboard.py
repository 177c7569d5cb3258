"""Candidate scores per role: computed from telemetry, cached until the next re-scoring.

Selections on the call path only read the cache; re-scoring (scheduled, after an admin change, or on
request) recomputes, warms the selector's cached decisions and announces `model.profile.scored`.
"""

from __future__ import annotations

from collections.abc import Callable

from router.catalog import Catalog
from router.clock import Clock
from router.events import EventBus, Topic
from router.roles import Role
from router.scoring import RoleScores, candidate_stats, score
from router.state import RoutingState
from router.telemetry import TelemetryAggregator


class Scoreboard:
    def __init__(self, catalog: Catalog, state: RoutingState, telemetry: TelemetryAggregator, clock: Clock) -> None:
        self._catalog = catalog
        self._state = state
        self._telemetry = telemetry
        self._clock = clock
        self._scores: dict[Role, RoleScores] = {}

    def get(self, role: Role) -> RoleScores:
        """The cached scores, computed on first use."""
        scores = self._scores.get(role)
        return scores if scores is not None else self.compute(role)

    def cached(self, role: Role) -> RoleScores | None:
        return self._scores.get(role)

    def compute(self, role: Role) -> RoleScores:
        now = self._clock()
        policy = self._state.policy
        entries = [e for e in self._catalog.for_role(role) if not e.last_resort]
        book = self._state.quality
        stats = [candidate_stats(role, e, self._telemetry, now, policy.min_samples,
                                 book.quality(role, e.name, e.quality))
                 for e in entries]
        breakdowns = score(stats, policy.score_weights, policy.selection_weights)
        result = RoleScores(role, now, policy.score_weights, policy.selection_weights, {b.model: b for b in breakdowns})
        self._scores[role] = result
        return result

    def clear(self) -> None:
        self._scores.clear()


class Rescorer:
    """Recompute the mode's roles (or one), warm the selector on the new scores, publish per role."""

    def __init__(
        self, scoreboard: Scoreboard, warm: Callable[[Role], None], state: RoutingState, bus: EventBus
    ) -> None:
        self._scoreboard = scoreboard
        self._warm = warm
        self._state = state
        self._bus = bus

    def rescore(self, role: Role | None = None, *, publish: bool = True) -> list[RoleScores]:
        roles = [role] if role is not None else self._state.policy.profiles.roles()
        out = []
        for r in roles:
            result = self._scoreboard.compute(r)
            self._warm(r)
            out.append(result)
            if publish:
                self._bus.publish(Topic.PROFILE_SCORED, {**result.to_dict(), "mode": self._state.mode.value})
        return out
