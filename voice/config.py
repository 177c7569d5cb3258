"""Server settings, read once from the environment (SOMAGENT_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from voice.capacity import CapacityLimits

DeploymentMode = Literal["developer-light", "test", "production"]
MODES: tuple[str, ...] = ("developer-light", "test", "production")


@dataclass(frozen=True)
class Settings:
    deployment_mode: DeploymentMode = "developer-light"
    api_keys: frozenset[str] = field(default_factory=frozenset)
    max_event_bytes: int = 4 * 1024 * 1024
    capacity: CapacityLimits = field(default_factory=CapacityLimits)  # admission control (SOMAGENT_MAX_SESSIONS ...)
    client_secret_ttl_s: int = 600
    default_silence_ms: int = 300
    warmup: bool = True
    max_calls_per_key: int = 4  # concurrent WebRTC calls per API key or client secret
    ice_servers: str = ""  # STUN/TURN for WebRTC: a JSON list or comma-separated URLs; empty: host candidates only

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        mode = env.get("SOMAGENT_DEPLOYMENT_MODE", "developer-light")
        if mode not in MODES:
            raise ValueError(f"SOMAGENT_DEPLOYMENT_MODE must be one of {', '.join(MODES)}, not {mode!r}")
        keys = frozenset(k.strip() for k in env.get("SOMAGENT_API_KEYS", "").split(",") if k.strip())
        return cls(
            deployment_mode=mode,  # type: ignore[arg-type]
            api_keys=keys,
            max_event_bytes=int(env.get("SOMAGENT_MAX_EVENT_BYTES", cls.max_event_bytes)),
            capacity=CapacityLimits.from_env(env),
            default_silence_ms=int(env.get("SOMAGENT_SILENCE_MS", cls.default_silence_ms)),
            warmup=env.get("SOMAGENT_WARMUP", "1") != "0",
            max_calls_per_key=int(env.get("SOMAGENT_MAX_CALLS_PER_KEY", cls.max_calls_per_key)),
            ice_servers=env.get("SOMAGENT_ICE_SERVERS", ""),
        )

    @property
    def requires_key(self) -> bool:
        return self.deployment_mode != "developer-light"
