"""Recognition fed from its own task, so VAD and end-of-turn decisions never wait for the recogniser.

A recogniser may take longer than real time over a stretch of speech (pocketsphinx's search peaks at
~50 ms per 20 ms frame, and a busy server shares its workers among many sessions). Audio waiting for it
is batched into one push, which also saves per-call overhead; `finish()` drains what is waiting and
returns the final hypothesis.

A stream that falls behind degrades instead of stalling: once the audio not yet recognised exceeds
`lag_on_s` it asks for no more partials (the final still covers everything), and says so through
`on_lagging(True, backlog_s)`; below `lag_off_s` partials come back (`on_lagging(False, ...)`). Past
`MAX_BACKLOG_S` audio is dropped, counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from adapters.aio import cancel_and_wait
from adapters.asr.base import SAMPLE_RATE, RecognitionStream, Transcript
from adapters.errors import AdapterError

log = logging.getLogger(__name__)

MAX_BACKLOG_S = 30.0  # bounded: a recogniser this far behind is dropping audio, and says so
LAG_ON_S = 1.0  # partials are shed from here ...
LAG_OFF_S = 0.4  # ... until the backlog is back under this


class BackgroundRecognition:
    def __init__(self, stream: RecognitionStream, on_partial: Callable[[Transcript], None],
                 on_lagging: Callable[[bool, float], None] | None = None, *,
                 lag_on_s: float = LAG_ON_S, lag_off_s: float = LAG_OFF_S) -> None:
        self._stream = stream
        self._on_partial = on_partial
        self._on_lagging = on_lagging
        self._lag_on = lag_on_s * SAMPLE_RATE
        self._lag_off = lag_off_s * SAMPLE_RATE
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._inflight_samples = 0
        self._wake = asyncio.Event()
        self._speculate = False
        self._handed = asyncio.Event()  # the recogniser was told to speculate (the audio before it is with it)
        self._closing = False
        self._quiet = False  # the newest audio is silence: no new partial (it would hold up the final)
        self.lagging = False
        self.lag_episodes = 0
        self.dropped_samples = 0
        self.error: AdapterError | None = None
        self._task = asyncio.create_task(self._run(), name="recognition-feed")

    @property
    def model(self) -> str | None:
        """The recogniser on this utterance now (a fallback stream's changes when it fails over)."""
        return getattr(self._stream, "model", None)

    @property
    def backlog_s(self) -> float:
        """Audio handed to this stream and not yet recognised."""
        return (self._pending_samples + self._inflight_samples) / SAMPLE_RATE

    def push(self, pcm: np.ndarray, *, voiced: bool = True) -> None:
        """`voiced=False` for the silence inside or after an utterance: it goes to the recogniser, but starts no
        partial decode, so that a speculative final after a pause finds the recogniser free rather than busy with
        a partial of the same words."""
        if self.error is not None or self._closing:
            return
        self._quiet = not voiced
        if self._pending_samples >= MAX_BACKLOG_S * SAMPLE_RATE:
            self.dropped_samples += len(pcm)
            return
        self._pending.append(pcm)
        self._pending_samples += len(pcm)
        self._check_lag()
        self._wake.set()

    def speculate(self) -> None:
        """The user fell silent: once the audio pushed so far is with the recogniser, let it start its final."""
        if self.error is None and not self._closing:
            self._speculate = True
            self._wake.set()

    def speech_resumed(self) -> None:
        """Speech again: a speculation not yet handed on is forgotten, one handed on is dropped."""
        if self._speculate:
            self._speculate = False
        elif self.error is None:
            self._handed.clear()
            self._stream.speech_resumed()

    async def speculation(self) -> Transcript | None:
        """The speculative final, once the recogniser has it (`RecognitionStream.speculation`)."""
        await self._handed.wait()
        return await self._stream.speculation()

    def _check_lag(self) -> None:
        behind = self._pending_samples + self._inflight_samples
        if not self.lagging and behind > self._lag_on:
            self._set_lagging(True)
        elif self.lagging and behind < self._lag_off:
            self._set_lagging(False)

    def _set_lagging(self, lagging: bool) -> None:
        self.lagging = lagging
        self.lag_episodes += int(lagging)
        if self._on_lagging is not None:
            self._on_lagging(lagging, self.backlog_s)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                chunk = np.concatenate(self._pending)
                self._pending.clear()
                self._inflight_samples, self._pending_samples = len(chunk), 0
                try:
                    partial = await self._stream.push(chunk, partial=not (self.lagging or self._closing or self._quiet))
                except AdapterError as exc:
                    log.warning("recognition failed mid-utterance: %s", exc)
                    self.error = exc
                    return
                finally:
                    self._inflight_samples = 0
                self._check_lag()
                if partial is not None and partial.text and not self.lagging:
                    self._on_partial(partial)
            if self._speculate:
                self._speculate = False
                self._stream.speculate()
                self._handed.set()
            if self._closing:
                return

    async def finish(self) -> Transcript:
        """Everything pushed is recognised, then the utterance is closed; a user waits, so ahead of
        streams still speaking (no partials: the final follows)."""
        self._closing = True
        self._stream.expedite()
        self._wake.set()
        await self._task
        if self.lagging:
            self._set_lagging(False)  # caught up: the final is all there is left
        if self.dropped_samples:
            behind_s = self.dropped_samples / SAMPLE_RATE
            log.warning("recogniser fell %.1f s behind; that audio was not recognised", behind_s)
        if self.error is not None:
            await self._stream.aclose()
            raise self.error
        return await self._stream.finish()

    async def aclose(self) -> None:
        self._closing = True
        await cancel_and_wait(self._task)
        await self._stream.aclose()
