"""Recognition fed from its own task, so VAD and end-of-turn decisions never wait for the recogniser.

A recogniser may take longer than real time over a stretch of speech (pocketsphinx's search peaks at
~50 ms per 20 ms frame). Audio waiting for it is batched into one push, which also saves per-call
overhead; `finish()` drains what is waiting and returns the final hypothesis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from adapters.asr.base import SAMPLE_RATE, RecognitionStream, Transcript
from adapters.errors import AdapterError

log = logging.getLogger(__name__)

MAX_BACKLOG_S = 30.0  # bounded: a recogniser this far behind is dropping audio, and says so


class BackgroundRecognition:
    def __init__(self, stream: RecognitionStream, on_partial: Callable[[Transcript], None]) -> None:
        self._stream = stream
        self._on_partial = on_partial
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._wake = asyncio.Event()
        self._closing = False
        self.dropped_samples = 0
        self.error: AdapterError | None = None
        self._task = asyncio.create_task(self._run(), name="recognition-feed")

    def push(self, pcm: np.ndarray) -> None:
        if self.error is not None or self._closing:
            return
        if self._pending_samples >= MAX_BACKLOG_S * SAMPLE_RATE:
            self.dropped_samples += len(pcm)
            return
        self._pending.append(pcm)
        self._pending_samples += len(pcm)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                chunk = np.concatenate(self._pending)
                self._pending.clear()
                self._pending_samples = 0
                try:
                    partial = await self._stream.push(chunk)
                except AdapterError as exc:
                    log.warning("recognition failed mid-utterance: %s", exc)
                    self.error = exc
                    return
                if partial is not None and partial.text:
                    self._on_partial(partial)
            if self._closing:
                return

    async def finish(self) -> Transcript:
        """Everything pushed is recognised, then the utterance is closed."""
        self._closing = True
        self._wake.set()
        await self._task
        if self.dropped_samples:
            log.warning("recogniser fell %.1f s behind; that audio was not recognised", self.dropped_samples / SAMPLE_RATE)
        if self.error is not None:
            await self._stream.aclose()
            raise self.error
        return await self._stream.finish()

    async def aclose(self) -> None:
        self._closing = True
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._stream.aclose()
