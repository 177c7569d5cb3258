"""Who a model call is for: the keys that overrides, stickiness and telemetry hang on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CallContext:
    tenant: str | None = None
    persona: str | None = None
    conversation_id: str | None = None
    session_id: str | None = None
    source: str = "live"  # what the call's telemetry is filed under: live, or capsule (a benchmark run)
