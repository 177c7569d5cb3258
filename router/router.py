"""The model router: every model call goes through here, tagged with its role.

This is the interface the voice service calls. Selection here is the profile's order with failover
before any output reached the caller; scoring, overrides and breakers plug in behind the same calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import numpy as np

from adapters.asr.base import SpeechRecognizer
from adapters.errors import AdapterError
from adapters.llm.base import ChatChunk, ChatModel, ChatRequest
from adapters.tts.base import SpeechSynthesizer
from router.catalog import Catalog
from router.context import CallContext
from router.events import EventBus
from router.profiles import ProfileSet
from router.roles import Role

log = logging.getLogger(__name__)


class AllCandidatesFailed(RuntimeError):
    """Every model of the role failed; the caller turns this into an apology."""

    def __init__(self, role: Role, errors: list[str]) -> None:
        super().__init__(f"every {role.value} model failed: " + "; ".join(errors))
        self.role = role
        self.errors = errors


class ModelRouter:
    def __init__(self, catalog: Catalog, profiles: ProfileSet, bus: EventBus | None = None) -> None:
        self.catalog = catalog
        self.profiles = profiles
        self.bus = bus or EventBus()

    async def start(self) -> None:
        """Build and warm the speech engines so the first turn pays no loading cost."""
        for role in (Role.SPEECH_RECOGNITION, Role.SPEECH_SYNTHESIS):
            for name in self.profiles.get(role).candidates:
                try:
                    await self.catalog.adapter(name).start()
                except AdapterError as exc:
                    log.warning("model %s unavailable at start: %s", name, exc)

    def candidates(self, role: Role, ctx: CallContext) -> tuple[str, ...]:
        return self.profiles.get(role).candidates

    def _publish_selection(self, role: Role, ctx: CallContext, chosen: str, candidates: tuple[str, ...]) -> None:
        self.bus.publish("router.selection", {
            "role": role.value, "chosen": chosen, "candidates": list(candidates),
            "tenant": ctx.tenant, "persona": ctx.persona, "conversation_id": ctx.conversation_id,
            "rationale": "profile order",
        })

    def _publish_fallback(self, role: Role, ctx: CallContext, failed: str, error: str, next_model: str | None) -> None:
        self.bus.publish("model.fallback.used", {
            "role": role.value, "failed_model": failed, "error": error, "next_model": next_model,
            "conversation_id": ctx.conversation_id,
        })

    async def stream_chat(self, role: Role, request: ChatRequest, ctx: CallContext) -> AsyncIterator[ChatChunk]:
        """Stream from the first candidate that answers; fail over only before any text was yielded."""
        profile = self.profiles.get(role)
        candidates = self.candidates(role, ctx)
        if request.temperature is None and profile.temperature is not None:
            request = ChatRequest(request.messages, profile.temperature, request.max_tokens or profile.max_tokens, request.metadata)
        errors: list[str] = []
        for i, name in enumerate(candidates):
            model: ChatModel = self.catalog.adapter(name)
            self._publish_selection(role, ctx, name, candidates)
            started = time.perf_counter()
            yielded = False
            try:
                async for chunk in model.stream(request):
                    yielded = yielded or bool(chunk.text)
                    yield chunk
                self._record(role, name, ctx, "ok", started)
                return
            except AdapterError as exc:
                self._record(role, name, ctx, exc.outcome, started)
                if yielded:
                    raise
                errors.append(f"{name}: {exc}")
                nxt = candidates[i + 1] if i + 1 < len(candidates) else None
                self._publish_fallback(role, ctx, name, str(exc), nxt)
        raise AllCandidatesFailed(role, errors)

    def recognizer(self, ctx: CallContext) -> SpeechRecognizer:
        return self.catalog.adapter(self.candidates(Role.SPEECH_RECOGNITION, ctx)[0])

    def recognizers(self, ctx: CallContext) -> list[SpeechRecognizer]:
        return [self.catalog.adapter(n) for n in self.candidates(Role.SPEECH_RECOGNITION, ctx)]

    async def synthesize(self, text: str, ctx: CallContext, voice: str | None = None) -> AsyncIterator[tuple[np.ndarray, int]]:
        """Yield (pcm int16, sample rate) blocks; fail over to the next voice engine before first audio."""
        candidates = self.candidates(Role.SPEECH_SYNTHESIS, ctx)
        errors: list[str] = []
        for i, name in enumerate(candidates):
            tts: SpeechSynthesizer = self.catalog.adapter(name)
            started = time.perf_counter()
            yielded = False
            try:
                async for block in tts.synthesize(text, voice=voice):
                    yielded = True
                    yield block, tts.sample_rate
                self._record(Role.SPEECH_SYNTHESIS, name, ctx, "ok", started)
                return
            except AdapterError as exc:
                self._record(Role.SPEECH_SYNTHESIS, name, ctx, exc.outcome, started)
                if yielded:
                    raise
                errors.append(f"{name}: {exc}")
                self._publish_fallback(Role.SPEECH_SYNTHESIS, ctx, name, str(exc), candidates[i + 1] if i + 1 < len(candidates) else None)
        raise AllCandidatesFailed(Role.SPEECH_SYNTHESIS, errors)

    def _record(self, role: Role, model: str, ctx: CallContext, outcome: str, started: float) -> None:
        self.bus.publish("slm.metrics", {
            "role": role.value, "model": model, "tenant": ctx.tenant, "persona": ctx.persona,
            "conversation_id": ctx.conversation_id, "outcome": outcome,
            "latency_ms": (time.perf_counter() - started) * 1000.0,
        })

    async def aclose(self) -> None:
        for adapter in self.catalog.built():
            try:
                await adapter.aclose()
            except Exception:  # closing must reach every adapter
                log.exception("closing adapter %r failed", adapter)
