"""Deployment modes and what each one defaults to: profiles, scoring weights, deadlines, breaker tuning."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from router.breaker import BreakerConfig
from router.profiles import ModelProfile, ProfileSet
from router.roles import Role


class DeploymentMode(StrEnum):
    DEVELOPER_LIGHT = "developer-light"
    TEST = "test"
    PRODUCTION = "production"


@dataclass(frozen=True)
class ScoreWeights:
    """Composite score: w_q*quality + w_c*(1/cost) + w_l*(1/latency) + w_r*reliability (terms normalised)."""

    quality: float = 0.25
    cost: float = 0.25
    latency: float = 0.25
    reliability: float = 0.25

    def __post_init__(self) -> None:
        if min(self.quality, self.cost, self.latency, self.reliability) < 0:
            raise ValueError("score weights cannot be negative")


@dataclass(frozen=True)
class SelectionWeights:
    """Auto-selection ranking among the candidates that passed the SLA filters."""

    cost: float = 0.5
    success: float = 0.3
    latency: float = 0.2

    def __post_init__(self) -> None:
        if min(self.cost, self.success, self.latency) < 0 or self.cost + self.success + self.latency <= 0:
            raise ValueError("selection weights must be non-negative and not all zero")

    @classmethod
    def parse(cls, text: str) -> SelectionWeights:
        """ "cost=0.5,success=0.3,latency=0.2" (any subset; the rest keep their defaults)."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, val = part.partition("=")
            if not sep or key.strip() not in ("cost", "success", "latency"):
                raise ValueError(f"selection weight {part!r}: expected cost=, success= or latency=<number>")
            values[key.strip()] = float(val)
        return cls(**values)


@dataclass(frozen=True)
class RoleTimeouts:
    """Voice deadlines: fail over if nothing reached the user by `first_output_s`; a stream silent for
    `stall_s` after output began is broken; a first output later than `slow_s` is a slow call."""

    first_output_s: float
    stall_s: float
    slow_s: float


@dataclass(frozen=True)
class ModePolicy:
    mode: DeploymentMode
    profiles: ProfileSet
    score_weights: ScoreWeights = ScoreWeights()
    selection_weights: SelectionWeights = SelectionWeights()
    timeouts: dict[Role, RoleTimeouts] = field(default_factory=dict)
    breaker: BreakerConfig = BreakerConfig()
    stale_after_s: float = 900.0  # telemetry older than this cannot drive auto-selection
    min_samples: int = 10  # calls in a window before its success rate / p95 are trusted

    def timeouts_for(self, role: Role, profile: ModelProfile | None = None) -> RoleTimeouts:
        base = self.timeouts.get(role) or DEFAULT_TIMEOUTS[self.mode][role]
        if profile is None:
            return base
        return RoleTimeouts(
            first_output_s=profile.first_output_deadline_s or base.first_output_s,
            stall_s=profile.stall_timeout_s or base.stall_s,
            slow_s=min(base.slow_s, profile.first_output_deadline_s or base.slow_s),
        )


def _timeouts(scale: float) -> dict[Role, RoleTimeouts]:
    base = {
        Role.DIALOGUE: RoleTimeouts(2.0, 4.0, 1.2),
        Role.TOOL_PLANNING: RoleTimeouts(4.0, 6.0, 2.5),
        Role.CODE: RoleTimeouts(8.0, 10.0, 5.0),
        Role.KNOWLEDGE: RoleTimeouts(4.0, 6.0, 2.5),
        Role.SUMMARY: RoleTimeouts(10.0, 10.0, 6.0),
        Role.SPEECH_RECOGNITION: RoleTimeouts(2.0, 4.0, 1.0),
        Role.SPEECH_SYNTHESIS: RoleTimeouts(1.5, 3.0, 0.8),
    }
    return {r: RoleTimeouts(t.first_output_s * scale, t.stall_s * scale, t.slow_s * scale) for r, t in base.items()}


# Developer machines run local models on CPU: generous deadlines. Tests: the production figures.
DEFAULT_TIMEOUTS: dict[DeploymentMode, dict[Role, RoleTimeouts]] = {
    DeploymentMode.DEVELOPER_LIGHT: _timeouts(5.0),
    DeploymentMode.TEST: _timeouts(1.0),
    DeploymentMode.PRODUCTION: _timeouts(1.0),
}

DEFAULT_SCORE_WEIGHTS: dict[DeploymentMode, ScoreWeights] = {
    DeploymentMode.DEVELOPER_LIGHT: ScoreWeights(quality=0.2, cost=0.2, latency=0.4, reliability=0.2),
    DeploymentMode.TEST: ScoreWeights(quality=0.25, cost=0.25, latency=0.25, reliability=0.25),
    DeploymentMode.PRODUCTION: ScoreWeights(quality=0.3, cost=0.3, latency=0.2, reliability=0.2),
}

DEFAULT_BREAKERS: dict[DeploymentMode, BreakerConfig] = {
    DeploymentMode.DEVELOPER_LIGHT: BreakerConfig(min_calls=3, base_ejection_s=5.0, max_ejection_s=60.0),
    DeploymentMode.TEST: BreakerConfig(),
    DeploymentMode.PRODUCTION: BreakerConfig(),
}


def make_policies(
    profiles: dict[DeploymentMode, ProfileSet] | ProfileSet,
    *,
    selection_weights: SelectionWeights = SelectionWeights(),
    stale_after_s: float = 900.0,
) -> dict[DeploymentMode, ModePolicy]:
    """A policy per mode: the given profiles (one set for all modes, or one per mode) and the mode defaults."""
    out = {}
    for mode in DeploymentMode:
        mode_profiles = profiles.get(mode) if isinstance(profiles, dict) else profiles
        if mode_profiles is None:
            raise ValueError(f"no profiles for mode {mode.value!r}")
        out[mode] = ModePolicy(
            mode=mode,
            profiles=mode_profiles,
            score_weights=DEFAULT_SCORE_WEIGHTS[mode],
            selection_weights=selection_weights,
            timeouts=DEFAULT_TIMEOUTS[mode],
            breaker=DEFAULT_BREAKERS[mode],
            stale_after_s=stale_after_s,
        )
    return out
