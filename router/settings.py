"""Router settings from the environment. Invalid values are errors, never silently replaced by defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from router.modes import DeploymentMode, SelectionWeights

DEFAULT_DATABASE_URL = "sqlite:///./data/somagent.db"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{name} must be a boolean (1/0, true/false, yes/no), not {value!r}")


@dataclass(frozen=True)
class RouterSettings:
    mode: DeploymentMode = DeploymentMode.DEVELOPER_LIGHT
    database_url: str | None = None  # None: no persistence (state and audit kept in memory)
    auto_selection: bool = False
    admin_key: str | None = None  # bootstraps the first admin key (stored hashed)
    selection_weights: SelectionWeights = SelectionWeights()
    stale_after_s: float = 900.0
    rescore_interval_s: float = 30.0
    flush_interval_s: float = 0.5
    probe_interval_s: float | None = None  # synthetic probe calls keep idle candidates' telemetry fresh
    event_retention_s: float = 7 * 86400.0
    catalog_path: str | None = None  # JSON file adding models (and per-mode profiles) to the catalogue
    event_poll_s: float | None = None  # SQLite: read other processes' events this often (None: this process alone)
    dnsmos_sample_every: int = 20  # production feedback: DNSMOS of one synthesised sentence in N per engine (0: off)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RouterSettings:
        """SOMAGENT_DEPLOYMENT_MODE, SOMAGENT_DATABASE_URL, AUTO_MODEL_SELECTION_ENABLED, SOMAGENT_ADMIN_KEY,
        SOMAGENT_ROUTER_SELECTION_WEIGHTS, SOMAGENT_ROUTER_STALE_AFTER_S, SOMAGENT_ROUTER_PROBE_INTERVAL_S,
        SOMAGENT_ROUTER_CATALOG, SOMAGENT_ROUTER_EVENT_POLL_S, SOMAGENT_DNSMOS_SAMPLE_EVERY."""
        env = os.environ if env is None else env
        raw_mode = env.get("SOMAGENT_DEPLOYMENT_MODE", DeploymentMode.DEVELOPER_LIGHT.value)
        try:
            mode = DeploymentMode(raw_mode)
        except ValueError:
            raise ValueError(
                f"SOMAGENT_DEPLOYMENT_MODE must be one of "
                f"{', '.join(m.value for m in DeploymentMode)}, not {raw_mode!r}"
            ) from None
        probe = env.get("SOMAGENT_ROUTER_PROBE_INTERVAL_S")
        poll = env.get("SOMAGENT_ROUTER_EVENT_POLL_S")
        return cls(
            mode=mode,
            database_url=env.get("SOMAGENT_DATABASE_URL") or DEFAULT_DATABASE_URL,
            auto_selection=parse_bool("AUTO_MODEL_SELECTION_ENABLED", env.get("AUTO_MODEL_SELECTION_ENABLED", "0")),
            admin_key=env.get("SOMAGENT_ADMIN_KEY") or None,
            selection_weights=SelectionWeights.parse(env.get("SOMAGENT_ROUTER_SELECTION_WEIGHTS", "")),
            stale_after_s=_positive("SOMAGENT_ROUTER_STALE_AFTER_S", env.get("SOMAGENT_ROUTER_STALE_AFTER_S", "900")),
            probe_interval_s=None if not probe else _positive("SOMAGENT_ROUTER_PROBE_INTERVAL_S", probe),
            catalog_path=env.get("SOMAGENT_ROUTER_CATALOG") or None,
            event_poll_s=None if not poll else _positive("SOMAGENT_ROUTER_EVENT_POLL_S", poll),
            dnsmos_sample_every=_count("SOMAGENT_DNSMOS_SAMPLE_EVERY", env.get("SOMAGENT_DNSMOS_SAMPLE_EVERY", "20")),
        )


def _count(name: str, value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None
    if v < 0:
        raise ValueError(f"{name} must be 0 (off) or more")
    return v


def _positive(name: str, value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None
    if v <= 0:
        raise ValueError(f"{name} must be positive")
    return v
