"""The running service: settings, the model router, authentication, admission control and the live sessions."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError

from adapters.aio import cancel_and_wait
from router import CallContext, ModelRouter, Role
from router.modes import DeploymentMode
from voice.auth import Authenticator, AuthError, Principal
from voice.capacity import LoadMonitor, Refusal
from voice.config import Settings
from voice.keyring import Keyring, KeyringError, master_key_from_env, parse_master_key
from voice.server_metrics import ServerMetrics
from voice.session import RealtimeSession
from voice.session_config import SessionConfig, merge
from voice.tenants import ANONYMOUS
from voice.vectors import AudioVault, AudioVectorStore, is_server_url, key_dir

log = logging.getLogger(__name__)
RETENTION_EVERY_S = 3600.0


class ServerBusy(Exception):
    """A session or call refused because the server could not serve it as well as those it has."""

    code = "server_busy"

    def __init__(self, refusal: Refusal, retry_after_s: int) -> None:
        super().__init__(refusal.message)
        self.reason, self.retry_after_s = refusal.reason, retry_after_s
        self.message = f"the server is busy: {refusal.message}; try again in {retry_after_s} s"


class TenantLimit(Exception):
    """A session or call refused because its tenant holds as many as it may (voice/tenants.py)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class VoiceServer:
    def __init__(self, settings: Settings, router: ModelRouter) -> None:
        self.settings = settings
        self.router = router
        self.auth = Authenticator(settings)
        router.admin_keys.delegate = self.auth.admin_actor  # API keys with admin:models / admin:audit
        self.vault: AudioVault | None = None  # per-tenant audio vectors (voice/vectors.py), opened at start
        self._retention: asyncio.Task | None = None
        self.sessions: dict[str, RealtimeSession] = {}
        self.sessions_opened = 0
        self.metrics = ServerMetrics()
        self.capacity = LoadMonitor(settings.capacity, sessions=lambda: len(self.sessions),
                                    backlog=router.speech_backlog, occupancy=router.speech_occupancy,
                                    session_backlog=lambda: [s.turns.asr_backlog_s() for s in self.sessions.values()],
                                    on_lag=self.metrics.loop_lag.observe)

    async def start(self) -> None:
        await self.capacity.start()
        self.vault = await asyncio.to_thread(open_vault, self.settings)
        if self.vault is not None:
            self._retention = asyncio.get_running_loop().create_task(self._retention_loop(), name="vector-retention")

    async def purge_expired(self, now: float | None = None) -> dict[str, int]:
        """Each tenant's audio vectors past its retention, deleted; how many went per tenant."""
        if self.vault is None:
            return {}
        now = self.vault.clock() if now is None else now
        gone = {}
        tenants = self.auth.tenants
        for tenant_id in {*tenants.tenants, ANONYMOUS}:
            days = tenants.get(tenant_id).retention_days
            if days > 0:
                gone[tenant_id] = await self.vault.call(self.vault.store.purge, tenant_id, now - days * 86400.0)
        return gone

    async def _retention_loop(self) -> None:
        while True:
            try:
                purged = await self.purge_expired()
                if any(purged.values()):
                    log.info("retention: purged %s", {t: n for t, n in purged.items() if n})
            except Exception:
                log.exception("the retention purge failed; trying again in an hour")
            await asyncio.sleep(RETENTION_EVERY_S)


    def base_config(self) -> SessionConfig:
        """Server defaults: our silence window, and transcription on with the router's recogniser."""
        data = SessionConfig().model_dump(mode="json")
        data["audio"]["input"]["turn_detection"]["silence_duration_ms"] = self.settings.default_silence_ms
        asr = self.router.candidates(Role.SPEECH_RECOGNITION, CallContext())[0]
        data["audio"]["input"]["transcription"] = {"model": asr}
        return SessionConfig.model_validate(data)

    def session_config(self, patch: dict[str, Any] | None, model: str | None = None) -> SessionConfig:
        data = self.base_config().model_dump(mode="json")
        if model:
            data["model"] = model
        if patch:
            data = merge(data, {k: v for k, v in patch.items() if k not in ("id", "object", "expires_at")})
        return SessionConfig.model_validate(data)

    def admit(self, transport: str) -> None:
        """Raise ServerBusy (counted by reason) when one more session would not get the service others get."""
        refusal = self.capacity.refusal()
        if refusal is not None:
            self.metrics.refusals.labels(reason=refusal.reason, transport=transport).inc()
            log.warning("refused a %s session: %s", transport, refusal.message)
            raise ServerBusy(refusal, self.settings.capacity.retry_after_s)

    def health(self) -> dict[str, Any]:
        refusal = self.capacity.refusal()
        return {"status": "ok", "ready": refusal is None, "reason": refusal.reason if refusal else None,
                "message": refusal.message if refusal else None, "mode": self.settings.deployment_mode,
                "sessions": len(self.sessions), "load": self.capacity.load().to_dict()}

    def sessions_of(self, tenant: str) -> int:
        return sum(1 for s in self.sessions.values() if s.ctx.tenant == tenant)

    async def open_session(self, principal: Principal, model: str | None = None,
                           patch: dict[str, Any] | None = None, transport: str = "websocket") -> RealtimeSession:
        limit = self.auth.tenants.get(principal.tenant).max_sessions
        if limit and self.sessions_of(principal.tenant) >= limit:
            raise TenantLimit("too_many_sessions", f"this tenant already has {limit} live sessions (its limit); "
                              "close one first")
        self.admit(transport)
        try:
            config = self.session_config({**(principal.session or {}), **(patch or {})}, model)
        except ValidationError as exc:
            raise AuthError("invalid_session", f"invalid session configuration: {exc.errors()[0]['msg']}") from None
        session = RealtimeSession(router=self.router, config=config, ctx=CallContext(tenant=principal.tenant),
                                  max_event_bytes=self.settings.max_event_bytes, observer=self.metrics.observe,
                                  limits=self.settings.session_limits, vault=self.vault,
                                  policy=self.settings.policy_rules)
        self.sessions[session.id] = session
        self.sessions_opened += 1
        self.metrics.sessions_opened.labels(transport=transport).inc()
        await session.start()
        return session

    async def close_session(self, session: RealtimeSession) -> None:
        self.sessions.pop(session.id, None)
        await session.aclose()

    async def aclose(self) -> None:
        for session in list(self.sessions.values()):
            await self.close_session(session)
        await self.capacity.aclose()
        await cancel_and_wait(self._retention)
        if self.vault is not None:
            await self.vault.aclose()


def open_vault(settings: Settings) -> AudioVault | None:
    """The audio vault the settings ask for, or None: none asked, or no master key where one must be given
    (test and production never make their own; developer-light keeps one beside the vectors)."""
    if not settings.audio_vectors:
        return None
    if not is_server_url(settings.audio_vectors) and settings.worker is not None:
        # Qdrant's local mode is one process's directory (it locks it): N workers need a Qdrant server
        log.warning("audio vectors are not kept: serve --workers needs SOMAGENT_AUDIO_VECTORS to be a Qdrant URL")
        return None
    base = key_dir(settings.audio_vectors)
    try:
        if settings.master_key:
            key = parse_master_key(settings.master_key)
        else:
            light = settings.deployment_mode is DeploymentMode.DEVELOPER_LIGHT
            key = master_key_from_env({}, base, allow_generate=light)
        keyring = Keyring(key, base / "keyring.json")
    except KeyringError as exc:
        log.warning("audio vectors are not kept: %s", exc)
        return None
    store = AudioVectorStore.open(settings.audio_vectors, keyring, keep_transcripts=settings.keep_transcripts)
    return AudioVault(store)
