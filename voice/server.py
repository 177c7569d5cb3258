"""The running service: settings, the model router, authentication and the live sessions."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from router import CallContext, ModelRouter, Role
from voice.auth import Authenticator, AuthError, Principal
from voice.config import Settings
from voice.session import RealtimeSession
from voice.session_config import SessionConfig, merge

log = logging.getLogger(__name__)


class VoiceServer:
    def __init__(self, settings: Settings, router: ModelRouter) -> None:
        self.settings = settings
        self.router = router
        self.auth = Authenticator(settings)
        self.sessions: dict[str, RealtimeSession] = {}
        self.sessions_opened = 0

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

    async def open_session(self, principal: Principal, model: str | None = None,
                           patch: dict[str, Any] | None = None) -> RealtimeSession:
        if len(self.sessions) >= self.settings.max_sessions:
            raise AuthError("too_many_sessions", f"the server is at its limit of {self.settings.max_sessions} sessions")
        try:
            config = self.session_config({**(principal.session or {}), **(patch or {})}, model)
        except ValidationError as exc:
            raise AuthError("invalid_session", f"invalid session configuration: {exc.errors()[0]['msg']}") from None
        session = RealtimeSession(router=self.router, config=config, ctx=CallContext(tenant=principal.key_id),
                                  max_event_bytes=self.settings.max_event_bytes)
        self.sessions[session.id] = session
        self.sessions_opened += 1
        await session.start()
        return session

    async def close_session(self, session: RealtimeSession) -> None:
        self.sessions.pop(session.id, None)
        await session.aclose()

    async def aclose(self) -> None:
        for session in list(self.sessions.values()):
            await self.close_session(session)
