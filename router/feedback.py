"""Production feedback: what live turns say about the models that served them, into `conversation.events` and
the same per-model quality aggregates the capsules feed (router/quality.py).

- a recogniser's final transcript: its confidence (mean word probability) is the WER proxy (1 - confidence);
- a synthesised sentence, sampled (one in `sample_every` per engine): its DNSMOS OVRL, scored in a worker
  thread, at most `max_in_flight` at a time (a busy scorer skips the sample rather than queue it);
- a turn's latency per stage (the `somagent.turn.metrics` breakdown), published as is.
Capsule calls (`CallContext.source == "capsule"`) are measured by their run, not here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from router.context import CallContext
from router.events import EventBus, Topic
from router.roles import Role
from router.state import RoutingState

log = logging.getLogger(__name__)

SAMPLE_EVERY = 20
MIN_SAMPLE_S = 1.0  # DNSMOS wants at least a second of speech to judge


def _dnsmos(pcm: np.ndarray, rate: int) -> dict[str, float]:
    from router.capsules.speech import dnsmos

    return dnsmos(pcm, rate)


class QualityFeedback:
    def __init__(self, state: RoutingState, bus: EventBus, *, sample_every: int = SAMPLE_EVERY,
                 max_in_flight: int = 1) -> None:
        self._state = state
        self._bus = bus
        self.sample_every = sample_every  # 0: no synthesis sampling
        self._max_in_flight = max_in_flight
        self._seen: Counter[str] = Counter()
        self._in_flight: set[Future[Mapping[str, float]]] = set()
        self._pool: ThreadPoolExecutor | None = None

    def _publish(self, kind: str, ctx: CallContext, **fields: Any) -> None:
        self._bus.publish(Topic.CONVERSATION, {"event": kind, "conversation_id": ctx.conversation_id,
                                               "session_id": ctx.session_id, "tenant": ctx.tenant,
                                               "persona": ctx.persona, **fields})

    def transcribed(self, model: str | None, confidence: float | None, ctx: CallContext, item_id: str) -> None:
        if model is None or confidence is None or ctx.source != "live":
            return
        confidence = min(1.0, max(0.0, float(confidence)))
        self._state.quality.observe(Role.SPEECH_RECOGNITION, model, confidence)
        self._publish("transcription.quality", ctx, item_id=item_id, model=model, confidence=round(confidence, 4),
                      wer_proxy=round(1.0 - confidence, 4))

    def turn(self, ctx: CallContext, item_id: str, stages: Mapping[str, float | None], asr_model: str | None) -> None:
        if ctx.source == "live":
            self._publish("turn.latency", ctx, item_id=item_id, asr_model=asr_model, stages_ms=dict(stages))

    # -- synthesis sampling (the router calls these around each synthesised sentence) -----------
    def wants(self, model: str, ctx: CallContext) -> bool:
        """Whether to keep this sentence's audio for scoring: cheap, on the call path."""
        if not self.sample_every or ctx.source != "live" or len(self._in_flight) >= self._max_in_flight:
            return False
        self._seen[model] += 1
        return self._seen[model] % self.sample_every == 1 or self.sample_every == 1

    def synthesized(self, model: str, ctx: CallContext, pcm: np.ndarray, rate: int) -> None:
        if len(pcm) < rate * MIN_SAMPLE_S or len(self._in_flight) >= self._max_in_flight:
            return
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._max_in_flight, thread_name_prefix="dnsmos")
        future = self._pool.submit(_dnsmos, pcm, rate)
        self._in_flight.add(future)

        def done(f: Future[Mapping[str, float]]) -> None:  # in the scorer's thread: hand over to the loop
            try:
                loop.call_soon_threadsafe(self._scored, f, model, ctx, len(pcm) / rate)
            except RuntimeError:  # the loop closed meanwhile (the server stopped): nothing to report to
                pass

        future.add_done_callback(done)

    def _scored(self, f: Future[Mapping[str, float]], model: str, ctx: CallContext, seconds: float) -> None:
        self._in_flight.discard(f)  # only the loop touches the set
        try:
            scores = dict(f.result())
        except Exception:
            log.exception("scoring a synthesised sentence of %s failed", model)
            return
        ovrl = scores["ovrl_mos"]
        self._state.quality.observe(Role.SPEECH_SYNTHESIS, model, (ovrl - 1.0) / 4.0)
        self._publish("synthesis.quality", ctx, model=model, audio_s=round(seconds, 3),
                      dnsmos={k: round(v, 3) for k, v in scores.items()})

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
