"""pocketsphinx: the embedded offline recogniser, with its bundled en-US model.

Decoding runs in worker processes (see `pocketsphinx_worker`): pocketsphinx holds the GIL while it
searches, which in a thread would stall the event loop of every session. Each worker keeps warm
decoders (loading one takes ~0.35 s); an utterance is pinned to the least busy worker. The decoder
settings are in the worker.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.asr import pocketsphinx_worker
from adapters.asr.base import SAMPLE_RATE, RecognitionStream, SpeechRecognizer, Transcript, WordTiming
from adapters.errors import AdapterError, AdapterUnavailable


@dataclass(frozen=True)
class PocketsphinxConfig:
    workers: int = 2  # processes; decoding is CPU-bound, so about one per core
    decoders_per_worker: int = 2
    partial_interval_s: float = 0.2
    max_utterance_s: float = 60.0
    start_timeout_s: float = 60.0


class _Worker:
    """One decoding process and the replies awaited from it, in request order."""

    def __init__(self, config: PocketsphinxConfig) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server process
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=pocketsphinx_worker.serve, args=(child, config.decoders_per_worker, SAMPLE_RATE),
                                    daemon=True, name="pocketsphinx-worker")
        self._process.start()
        child.close()
        self._waiters: deque[asyncio.Future] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.streams = 0
        self.dead: str | None = None

    async def ready(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._conn.fileno(), self._on_readable)
        try:
            reply = await asyncio.wait_for(self._request_future(), timeout_s)
        except asyncio.TimeoutError:
            self.kill("did not start in time")
            raise AdapterUnavailable("pocketsphinx worker did not start in time") from None
        if reply != "ready":
            raise AdapterUnavailable(f"pocketsphinx worker failed to start: {reply}")

    def _request_future(self) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def _on_readable(self) -> None:
        try:
            while self._conn.poll():
                status, payload = self._conn.recv()
                fut = self._waiters.popleft()
                if fut.done():
                    continue
                if status == "ok":
                    fut.set_result(payload)
                else:
                    fut.set_exception(AdapterError(f"pocketsphinx: {payload}"))
        except (EOFError, OSError):
            self.kill("the decoding process ended")

    async def call(self, *request: Any) -> Any:
        if self.dead is not None:
            raise AdapterError(f"pocketsphinx worker unavailable: {self.dead}")
        fut = self._request_future()
        try:
            self._conn.send(request)
        except (OSError, ValueError) as exc:
            self.kill(str(exc))
            raise AdapterError(f"pocketsphinx worker unavailable: {exc}") from exc
        return await fut

    def kill(self, reason: str) -> None:
        if self.dead is None:
            self.dead = reason
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._conn.fileno())
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(AdapterError(f"pocketsphinx worker unavailable: {reason}"))
        if self._process.is_alive():
            self._process.kill()

    async def stop(self) -> None:
        if self.dead is None:
            try:
                await asyncio.wait_for(self.call("stop"), 5)
            except (AdapterError, asyncio.TimeoutError):
                pass
        self.kill("stopped")
        await asyncio.to_thread(self._process.join, 5)
        self._conn.close()


class PocketsphinxRecognizer(SpeechRecognizer):
    name = "pocketsphinx"

    def __init__(self, config: PocketsphinxConfig | None = None) -> None:
        self.config = config or PocketsphinxConfig()
        self._workers: list[_Worker] = []
        self._starting: asyncio.Lock | None = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            self._workers = [w for w in self._workers if w.dead is None]
            missing = self.config.workers - len(self._workers)
            if missing <= 0:
                return
            try:
                fresh = [_Worker(self.config) for _ in range(missing)]
            except OSError as exc:
                raise AdapterUnavailable(f"cannot start pocketsphinx workers: {exc}") from exc
            await asyncio.gather(*(w.ready(self.config.start_timeout_s) for w in fresh))
            self._workers.extend(fresh)

    def stream(self) -> RecognitionStream:
        return PocketsphinxStream(self, next(self._ids))

    async def worker(self) -> _Worker:
        """The least busy live worker, starting workers on first use or after one died."""
        if not any(w.dead is None for w in self._workers):
            await self.start()
        return min((w for w in self._workers if w.dead is None), key=lambda w: w.streams)

    async def aclose(self) -> None:
        workers, self._workers = self._workers, []
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)


class PocketsphinxStream(RecognitionStream):
    def __init__(self, owner: PocketsphinxRecognizer, sid: int) -> None:
        self._owner = owner
        self._sid = sid
        self._worker: _Worker | None = None
        self._samples = 0
        self._last_partial = ""
        self._since_partial = 0
        self._closed = False

    async def _bound(self) -> _Worker:
        if self._worker is None:
            self._worker = await self._owner.worker()
            self._worker.streams += 1
        return self._worker

    def _release(self) -> None:
        if self._worker is not None:
            self._worker.streams -= 1

    async def push(self, pcm: np.ndarray) -> Transcript | None:
        if self._closed:
            raise AdapterError("recognition stream already finished")
        if self._samples / SAMPLE_RATE >= self._owner.config.max_utterance_s:
            return None  # bounded: audio past the limit is ignored rather than growing the lattice
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        self._samples += len(pcm)
        self._since_partial += len(pcm)
        want = self._since_partial >= self._owner.config.partial_interval_s * SAMPLE_RATE
        if want:
            self._since_partial = 0
        worker = await self._bound()
        text = await worker.call("push", self._sid, pcm.tobytes(), want)
        if text is None or text == self._last_partial:
            return None
        self._last_partial = text
        return Transcript(text=text, is_final=False, audio_s=self._samples / SAMPLE_RATE)

    async def finish(self) -> Transcript:
        if self._closed:
            raise AdapterError("recognition stream already finished")
        self._closed = True
        worker = await self._bound()
        try:
            text, raw_words = await worker.call("finish", self._sid)
        finally:
            self._release()
        words = tuple(WordTiming(word=w, start_s=s, end_s=e, confidence=_posterior(p)) for w, s, e, p in raw_words)
        confs = [w.confidence for w in words if w.confidence is not None]
        return Transcript(text=text, is_final=True, words=words, confidence=float(np.mean(confs)) if confs else None,
                          audio_s=self._samples / SAMPLE_RATE)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            try:
                await self._worker.call("close", self._sid)
            except AdapterError:
                pass
            finally:
                self._release()


def _posterior(prob: float | None) -> float | None:
    """pocketsphinx gives word posteriors as log values in its own base; map to 0..1."""
    if prob is None or math.isnan(prob):
        return None
    value = math.exp(prob) if prob <= 0 else prob
    return max(0.0, min(1.0, value))
