"""The speech-recognition role's candidates behind one recogniser, as chat and synthesis failover are.

The session drives recognition itself (push audio, finish), so failover cannot be a loop around one call:
`FallbackRecognizer.stream()` opens the utterance on the first candidate that takes it, and the stream moves
to the next candidate when its recogniser fails mid-utterance, replaying the utterance's audio so far (kept,
up to `max_replay_s`, for exactly that). Each move is reported through `on_fallback`, which the router
publishes as `model.fallback.used`. Same interface as what it wraps (livekit's `FallbackAdapter`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from adapters.asr.base import SAMPLE_RATE, RecognitionOptions, RecognitionStream, SpeechRecognizer, Transcript
from adapters.errors import AdapterError

log = logging.getLogger(__name__)

OnFallback = Callable[[str, str, str | None], None]  # (failed model, reason, next model or None)


class FallbackRecognizer(SpeechRecognizer):
    """Candidates in the router's order; closing them is the router's job, so aclose() here does nothing."""

    def __init__(self, candidates: Sequence[SpeechRecognizer], on_fallback: OnFallback | None = None, *,
                 max_replay_s: float = 60.0) -> None:
        if not candidates:
            raise ValueError("a fallback recogniser needs at least one candidate")
        self.candidates = tuple(candidates)
        self.name = self.candidates[0].name
        self.sample_rate = self.candidates[0].sample_rate
        self._on_fallback = on_fallback
        self.max_replay_samples = int(max_replay_s * SAMPLE_RATE)

    def fallback(self, failed: str, reason: str, next_model: str | None) -> None:
        log.warning("recogniser %s failed (%s); %s", failed, reason,
                    f"trying {next_model}" if next_model else "no recogniser left")
        if self._on_fallback is not None:
            self._on_fallback(failed, reason, next_model)

    def open(self, start: int, options: RecognitionOptions | None = None) -> tuple[int, RecognitionStream]:
        """A stream on the first candidate from `start` on that takes one; AdapterError when none does."""
        for i in range(start, len(self.candidates)):
            try:
                return i, self.candidates[i].stream(options)
            except AdapterError as exc:
                nxt = self.candidates[i + 1].name if i + 1 < len(self.candidates) else None
                self.fallback(self.candidates[i].name, str(exc), nxt)
        raise AdapterError("no speech recogniser is available")

    def stream(self, options: RecognitionOptions | None = None) -> FallbackStream:
        index, inner = self.open(0, options)
        return FallbackStream(self, index, inner, options)


class FallbackStream(RecognitionStream):
    """One utterance; `model` names the candidate recognising it now."""

    def __init__(self, owner: FallbackRecognizer, index: int, inner: RecognitionStream,
                 options: RecognitionOptions | None = None) -> None:
        self._options = options  # the next candidate recognises the utterance as asked too
        self._owner = owner
        self._index = index
        self._inner = inner
        self._audio: list[np.ndarray] = []  # the utterance so far, to replay into the next candidate
        self._samples = 0
        self._expedited = False

    @property
    def model(self) -> str:
        return self._owner.candidates[self._index].name

    async def _next(self, exc: AdapterError) -> None:
        """Move to the next candidate that takes the audio so far; re-raises `exc` when none is left."""
        while True:  # bounded: every pass moves past one candidate or raises
            failed = self.model
            try:
                await self._inner.aclose()
            except Exception:  # the failed engine's own clean-up
                log.debug("closing the failed recognition stream of %s", failed, exc_info=True)
            last = self._index + 1 >= len(self._owner.candidates)
            if last or self._samples > self._owner.max_replay_samples:
                self._owner.fallback(failed, str(exc), None)
                raise exc
            self._owner.fallback(failed, str(exc), self._owner.candidates[self._index + 1].name)
            try:
                self._index, self._inner = self._owner.open(self._index + 1, self._options)
            except AdapterError:
                raise exc from None  # open() reported each candidate it could not use
            if self._expedited:
                self._inner.expedite()
            try:
                if self._audio:
                    await self._inner.push(np.concatenate(self._audio), partial=False)
                return
            except AdapterError as again:
                exc = again

    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        pcm = np.asarray(pcm, dtype=np.int16)
        self._samples += len(pcm)
        if self._samples <= self._owner.max_replay_samples:
            self._audio.append(pcm)
        else:
            self._audio.clear()  # too long to replay: a failure from here on ends the utterance
        try:
            return await self._inner.push(pcm, partial=partial)
        except AdapterError as exc:
            await self._next(exc)  # the replay included this audio
            return None

    async def finish(self) -> Transcript:
        for _ in range(len(self._owner.candidates)):  # bounded: each failure moves to the next or raises
            try:
                return await self._inner.finish()
            except AdapterError as exc:
                await self._next(exc)
        raise AdapterError("no speech recogniser could finish the utterance")

    def expedite(self) -> None:
        self._expedited = True
        self._inner.expedite()

    def speculate(self) -> None:
        self._inner.speculate()  # a candidate taking over later decodes its final when the turn ends

    def speech_resumed(self) -> None:
        self._inner.speech_resumed()

    async def speculation(self) -> Transcript | None:
        return await self._inner.speculation()

    async def aclose(self) -> None:
        await self._inner.aclose()
