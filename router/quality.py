"""Per-model quality aggregates: what benchmark capsules measured, moved by what production observes.

Two sources feed one number per (role, model), 0..1, that replaces the catalogue's prior in the scores:
- capsule runs (router/capsules): the model's mean item score over the latest run of each capsule of the role;
- production feedback: proxies of live turns (a recogniser's word confidence, sampled DNSMOS of synthesised
  speech), kept as an exponentially weighted mean.
The capsule figure is the anchor (a controlled measurement); live proxies move it by at most `LIVE_WEIGHT`, in
proportion to how many observations there are (`LIVE_HALF` of them count for half that weight), so a drift in
production shows before the next nightly run without a noisy proxy ever replacing the measurement. With no
capsule figure, the live mean moves the catalogue's prior the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.roles import Role

LIVE_WEIGHT = 0.3
LIVE_HALF = 50
LIVE_ALPHA = 0.02  # EWMA step: about the last 50 observations


@dataclass
class LiveQuality:
    n: int = 0
    mean: float = 0.0

    def observe(self, value: float) -> None:
        self.n += 1
        self.mean = value if self.n == 1 else self.mean + LIVE_ALPHA * (value - self.mean)


class QualityBook:
    def __init__(self) -> None:
        self.capsule: dict[tuple[Role, str], dict[str, float]] = {}  # (role, model) -> capsule name -> quality
        self.live: dict[tuple[Role, str], LiveQuality] = {}

    def set_measured(self, role: Role, model: str, capsule: str, quality: float) -> None:
        self.capsule.setdefault((role, model), {})[capsule] = min(1.0, max(0.0, float(quality)))

    def observe(self, role: Role, model: str, value: float) -> None:
        self.live.setdefault((role, model), LiveQuality()).observe(min(1.0, max(0.0, float(value))))

    def measured(self, role: Role, model: str) -> float | None:
        by_capsule = self.capsule.get((role, model))
        return sum(by_capsule.values()) / len(by_capsule) if by_capsule else None

    def quality(self, role: Role, model: str, prior: float | None = None) -> float | None:
        """The blended figure; None when neither a capsule nor production has said anything (use the prior)."""
        base = self.measured(role, model)
        live = self.live.get((role, model))
        if live is None or live.n == 0:
            return base
        anchor = base if base is not None else prior
        if anchor is None:
            return live.mean
        weight = LIVE_WEIGHT * live.n / (live.n + LIVE_HALF)
        return (1.0 - weight) * anchor + weight * live.mean

    def to_dict(self) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for role, model in sorted(set(self.capsule) | set(self.live)):
            live = self.live.get((role, model))
            out.setdefault(role.value, {})[model] = {
                "capsules": dict(self.capsule.get((role, model), {})),
                "live": None if live is None else {"n": live.n, "mean": round(live.mean, 4)},
                "quality": self.quality(role, model)}
        return out
