"""Speech recognisers as the router hands them out: the shared engine, metered per utterance.

The voice session drives recognition itself (push audio, finish), so each utterance is recorded here (audio
seconds, time to first partial, time from finish to the final transcript, outcome) and judged by the model's
breaker, which orders the next `recognizers()` list; `fallback_asr.FallbackRecognizer` moves an utterance
between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from adapters.asr.base import RecognitionOptions, RecognitionStream, SpeechRecognizer, Transcript
from router.breaker import CircuitBreaker
from router.failover import Attempt
from router.telemetry import Outcome


class MeteredStream(RecognitionStream):
    def __init__(self, inner: RecognitionStream, recognizer: MeteredRecognizer, admitted: bool) -> None:
        self._inner = inner
        self._owner = recognizer
        self.admitted = admitted  # whether the breaker counted this utterance as an attempt
        self._attempt = Attempt(recognizer.model, recognizer.wall_clock(), time.perf_counter())
        self._samples = 0
        self._finish_started: float | None = None
        self._done = False

    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        self._samples += len(pcm)
        try:
            result = await self._inner.push(pcm, partial=partial)
        except Exception as exc:
            self._settle(Outcome.ERROR, str(exc))
            raise
        if result is not None and result.text and self._attempt.first_output is None:
            self._attempt.first_output = time.perf_counter()
        return result

    def expedite(self) -> None:
        self._inner.expedite()

    def speculate(self) -> None:
        self._inner.speculate()

    def speech_resumed(self) -> None:
        self._inner.speech_resumed()

    async def speculation(self) -> Transcript | None:
        return await self._inner.speculation()

    async def finish(self) -> Transcript:
        self._finish_started = time.perf_counter()
        try:
            final = await self._inner.finish()
        except Exception as exc:
            self._settle(Outcome.ERROR, str(exc))
            raise
        self._settle(Outcome.OK, "")
        return final

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._settle(Outcome.CANCELLED, "")

    def _settle(self, outcome: Outcome, error: str) -> None:
        if self._done:
            return
        self._done = True
        a = self._attempt
        a.ended = time.perf_counter()
        a.outcome, a.error = outcome, error
        a.units_in = self._samples / float(self._owner.sample_rate or 16000)
        if self._finish_started is not None:  # what the user waits for: end of speech to final transcript
            a.started = self._finish_started
            a.first_output = a.ended
        self._owner.report(a, self.admitted)


class MeteredRecognizer(SpeechRecognizer):
    """Delegates to the shared engine; closing it is the router's job, so aclose() here does nothing."""

    def __init__(
        self,
        inner: SpeechRecognizer,
        model: str,
        breaker: CircuitBreaker,
        report: Callable[[Attempt], None],
        wall_clock: Callable[[], float],
    ) -> None:
        self.inner = inner
        self.model = model
        self.name = model  # the catalogue name, as operators and transcription.model know it
        self.sample_rate = inner.sample_rate
        self._breaker = breaker
        self._report = report
        self.wall_clock = wall_clock

    async def start(self) -> None:
        await self.inner.start()

    def stream(self, options: RecognitionOptions | None = None) -> RecognitionStream:
        # The session needs a recogniser even when every breaker is open, so a refusal only means this
        # utterance gives the breaker no verdict.
        admitted = self._breaker.allow()
        try:
            inner = self.inner.stream(options)
        except Exception:
            if admitted:
                self._breaker.record(ok=False)
            raise
        return MeteredStream(inner, self, admitted)

    def report(self, attempt: Attempt, admitted: bool = True) -> None:
        if admitted:
            if attempt.outcome is Outcome.CANCELLED:
                self._breaker.release()
            else:
                self._breaker.record(ok=attempt.outcome is Outcome.OK)
        self._report(attempt)

    async def aclose(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
