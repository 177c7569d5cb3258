"""Persona service levels: what a persona's calls must meet before auto-selection may use a model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PersonaSLA:
    latency_p95_ms: float | None = None  # p95 ceiling on time to first output (what a voice user waits for)
    min_success_rate: float | None = None  # 0..1
    safety: frozenset[str] = frozenset()  # properties every model serving the persona must have (hard filter)
    min_quality: float | None = None  # 0..1 quality floor (capsule-measured where measured, else the prior)

    def __post_init__(self) -> None:
        if self.latency_p95_ms is not None and self.latency_p95_ms <= 0:
            raise ValueError("latency_p95_ms must be positive")
        for name in ("min_success_rate", "min_quality"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_p95_ms": self.latency_p95_ms,
            "min_success_rate": self.min_success_rate,
            "safety": sorted(self.safety),
            "min_quality": self.min_quality,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersonaSLA:
        return cls(
            latency_p95_ms=data.get("latency_p95_ms"),
            min_success_rate=data.get("min_success_rate"),
            safety=frozenset(data.get("safety") or ()),
            min_quality=data.get("min_quality"),
        )
