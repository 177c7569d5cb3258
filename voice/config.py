"""The process's settings, read once from the environment (SOMAGENT_*) into one object.

`Settings.from_env` reads everything the server needs: its own limits, admission control, and the models'
settings (`ModelSettings`: the router's, the OpenAI-compatible dialogue model's, faster-whisper's), so
the deployment mode is read once and is the router's `DeploymentMode`. A `Settings` built in code without
`models` lets the app read the models' settings from the environment when it builds its router.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from adapters.asr.faster_whisper import FasterWhisperConfig
from adapters.llm.openai_compat import OpenAICompatConfig
from router.defaults import LocalModels, whisper_from_env
from router.modes import DeploymentMode
from router.settings import RouterSettings
from voice.capacity import CapacityLimits
from voice.limits import SessionLimits
from voice.policy import Rule, rules_from_env
from voice.siblings import WorkerIdentity


@dataclass(frozen=True)
class ModelSettings:
    """What the router is built from: its settings, the dialogue endpoint (None: none configured),
    faster-whisper from SOMAGENT_WHISPER_MODEL (None: not configured) and the local models of developer-light and
    test (None: the embedded parts alone, as `SOMAGENT_STACK=light` asks)."""

    router: RouterSettings
    llm: OpenAICompatConfig | None = None
    whisper: FasterWhisperConfig | None = None
    local: LocalModels | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelSettings:
        env = os.environ if env is None else env
        return cls(router=RouterSettings.from_env(env), llm=OpenAICompatConfig.from_env(env),
                   whisper=whisper_from_env(env), local=LocalModels.from_env(env))


@dataclass(frozen=True)
class Settings:
    deployment_mode: DeploymentMode = DeploymentMode.DEVELOPER_LIGHT
    api_keys: frozenset[str] = field(default_factory=frozenset)
    max_event_bytes: int = 4 * 1024 * 1024
    capacity: CapacityLimits = field(default_factory=CapacityLimits)  # admission control (SOMAGENT_MAX_SESSIONS ...)
    client_secret_ttl_s: int = 600
    default_silence_ms: int = 300
    warmup: bool = True
    max_calls_per_key: int = 4  # concurrent WebRTC calls per tenant, where its entry sets none (0: no limit)
    max_sessions_per_tenant: int = 0  # live sessions of any transport per tenant, where it sets none (0: no limit)
    tenants_file: str = ""  # SOMAGENT_TENANTS_FILE: tenants and their hashed keys (voice/tenants.py)
    keys_file: str = ""  # SOMAGENT_KEYS_FILE: keys made through /v1/admin/keys (voice/keystore.py); "": none kept
    # per-tenant audio vectors (voice/vectors.py): a directory (Qdrant local mode) or a Qdrant URL; "": none kept
    audio_vectors: str = ""
    master_key: str = ""  # base64, SOMAGENT_MASTER_KEY or the file SOMAGENT_MASTER_KEY_FILE (voice/keyring.py)
    keep_transcripts: bool = False  # SOMAGENT_KEEP_TRANSCRIPTS=1: transcripts stored (sealed) with the vectors
    retention_days: float = 30.0  # SOMAGENT_RETENTION_DAYS: audio vectors purged after, where a tenant sets none
    policy_rules: tuple[Rule, ...] = ()  # SOMAGENT_POLICY_RULES / _FILE: energy analytics to policy (voice/policy.py)
    ice_servers: str = ""  # STUN/TURN for WebRTC: a JSON list or comma-separated URLs; empty: host candidates only
    models: ModelSettings | None = None
    worker: WorkerIdentity | None = None  # one of `serve --workers N` (voice/workers.py), else None
    session_limits: SessionLimits = field(default_factory=SessionLimits)  # per session (voice/limits.py)

    def __post_init__(self) -> None:
        try:  # a plain string is accepted where the mode is given in code ("test")
            object.__setattr__(self, "deployment_mode", DeploymentMode(self.deployment_mode))
        except ValueError:
            raise ValueError(f"deployment mode must be one of {', '.join(m.value for m in DeploymentMode)}, "
                             f"not {self.deployment_mode!r}") from None
        if self.models is not None and self.models.router.mode is not self.deployment_mode:
            raise ValueError(f"the router's mode {self.models.router.mode} is not the server's {self.deployment_mode}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        models = ModelSettings.from_env(env)  # SOMAGENT_DEPLOYMENT_MODE is read (and checked) here, once
        keys = frozenset(k.strip() for k in env.get("SOMAGENT_API_KEYS", "").split(",") if k.strip())
        worker = WorkerIdentity.from_env(env)
        capacity = CapacityLimits.from_env(env)
        if worker is not None and env.get("SOMAGENT_MAX_SESSIONS"):
            # a cap given is the server's: each worker admits its share (the kernel spreads connections evenly);
            # the default cap is one event loop's, so each worker keeps it
            capacity = replace(capacity, max_sessions=math.ceil(capacity.max_sessions / worker.count))
        return cls(
            deployment_mode=models.router.mode,
            api_keys=keys,
            max_event_bytes=int(env.get("SOMAGENT_MAX_EVENT_BYTES", cls.max_event_bytes)),
            capacity=capacity,
            default_silence_ms=int(env.get("SOMAGENT_SILENCE_MS", cls.default_silence_ms)),
            warmup=env.get("SOMAGENT_WARMUP", "1") != "0",
            max_calls_per_key=int(env.get("SOMAGENT_MAX_CALLS_PER_KEY", cls.max_calls_per_key)),
            max_sessions_per_tenant=int(env.get("SOMAGENT_MAX_SESSIONS_PER_TENANT", cls.max_sessions_per_tenant)),
            tenants_file=env.get("SOMAGENT_TENANTS_FILE", ""),
            keys_file=env.get("SOMAGENT_KEYS_FILE", "./data/keys.json"),
            audio_vectors=env.get("SOMAGENT_AUDIO_VECTORS", "./data/vectors"),
            master_key=_master_key_text(env),
            keep_transcripts=env.get("SOMAGENT_KEEP_TRANSCRIPTS", "0") == "1",
            retention_days=float(env.get("SOMAGENT_RETENTION_DAYS", cls.retention_days)),
            policy_rules=rules_from_env(env),
            ice_servers=env.get("SOMAGENT_ICE_SERVERS", ""),
            models=models,
            worker=worker,
            session_limits=SessionLimits.from_env(env),
        )

    @property
    def requires_key(self) -> bool:
        return self.deployment_mode is not DeploymentMode.DEVELOPER_LIGHT


def _master_key_text(env: Mapping[str, str]) -> str:
    if env.get("SOMAGENT_MASTER_KEY"):
        return env["SOMAGENT_MASTER_KEY"]
    path = env.get("SOMAGENT_MASTER_KEY_FILE")
    if path:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError as exc:
            raise ValueError(f"cannot read SOMAGENT_MASTER_KEY_FILE {path}: {exc.strerror}") from None
    return ""
