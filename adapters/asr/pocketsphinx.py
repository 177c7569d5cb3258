"""pocketsphinx: the embedded offline recogniser, with its bundled en-US model.

Decoding runs in worker processes (see `pocketsphinx_worker`): pocketsphinx holds the GIL while it
searches, which in a thread would stall the event loop of every session. Each worker keeps warm
decoders (loading one takes ~0.35 s); an utterance is pinned to the least loaded worker. The decoder
settings are in the worker.

The event loop talks to a worker through an asyncio transport on its socket and never waits for a worker
that is behind: requests queue on our side, replies are read as they arrive. Each stream keeps at most one
request of at most `max_push_s` of audio queued, so a worker's queue is bounded by its streams; `backlog()`
reports it in seconds of audio. The worker itself holds one request at a time, and requests of a stream whose
utterance has ended (`expedite()`, then `finish()`) go ahead of streams still speaking: a user waiting for a
final waits for at most one `max_push_s` push of another stream, not for every stream on the worker.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing
import os
import pickle
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.aio import cancel_and_wait
from adapters.asr import pocketsphinx_worker
from adapters.asr.base import (
    SAMPLE_RATE,
    RecognitionOptions,
    RecognitionStream,
    SpeechRecognizer,
    Transcript,
    WordTiming,
)
from adapters.errors import AdapterError, AdapterUnavailable


@dataclass(frozen=True)
class PocketsphinxConfig:
    workers: int = 2  # processes; decoding is CPU-bound, so about one per core
    decoders_per_worker: int = 2
    partial_interval_s: float = 0.2
    max_push_s: float = 0.25  # audio per request: streams sharing a worker take turns at this grain, and a
    # final waits for at most one such push (decoding 0.25 s takes 25-100 ms here)
    max_utterance_s: float = 60.0
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 2.0
    serve: Callable[..., None] = pocketsphinx_worker.serve  # the process body: (conn, decoders, sample rate)


class _Frames(asyncio.Protocol):
    """The parent's end of a worker's socket, read and written by the event loop.

    The frames are those of `multiprocessing.connection.Connection` (a 4-byte big-endian length, or -1 and an
    8-byte one, then a pickle), so the worker keeps its plain blocking `Connection`. Writes go to the
    transport's buffer and never wait; replies are parsed as they arrive.
    """

    def __init__(self, on_message: Callable[[Any], None], on_lost: Callable[[str], None]) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            if len(self._buf) < 4:
                return
            (size,) = struct.unpack_from("!i", self._buf)
            head = 4
            if size == -1:
                if len(self._buf) < 12:
                    return
                (size,) = struct.unpack_from("!Q", self._buf, 4)
                head = 12
            if len(self._buf) < head + size:
                return
            payload = bytes(self._buf[head:head + size])
            del self._buf[:head + size]
            self._on_message(pickle.loads(payload))

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(f"the decoding process ended ({exc})" if exc else "the decoding process ended")

    @staticmethod
    def encode(message: Any) -> bytes:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        n = len(payload)
        header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!i", -1) + struct.pack("!Q", n)
        return header + payload


@dataclass(slots=True)
class _Request:
    frame: bytes
    samples: int  # the audio it carries, counted in the backlog until its reply
    future: asyncio.Future = field(repr=False)


class _Worker:
    """One decoding process, its queue of requests, and the one it is decoding.

    `send` never waits: the request joins the urgent or the normal queue, and the next one goes to the process
    when the previous reply arrives (the process holds one request at a time, so a request made urgent later
    can still go ahead). What is queued is bounded by the callers, each stream keeping at most one request of
    at most `max_push_s` queued. `backlog_s` is the audio sent and not yet decoded, as admission control and
    metrics see it.
    """

    def __init__(self, config: PocketsphinxConfig, index: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server process
        parent, child = ctx.Pipe()  # a Unix socket pair
        self._process = ctx.Process(target=config.serve, args=(child, config.decoders_per_worker, SAMPLE_RATE),
                                    daemon=True, name=f"pocketsphinx-worker-{index}")
        self._process.start()
        child.close()
        self._sock: socket.socket | None = socket.socket(fileno=os.dup(parent.fileno()))
        parent.close()
        self.label = f"pocketsphinx-{index}"
        self._current: _Request | None = None  # the request the process is decoding (or the start-up reply)
        self._urgent: deque[_Request] = deque()
        self._queue: deque[_Request] = deque()
        self._transport: asyncio.Transport | None = None
        self._stop_timeout_s = config.stop_timeout_s
        self.streams = 0
        self.queued_samples = 0
        self._occupied_total = 0.0  # seconds with a request outstanding (the worker is decoding all along)
        self._occupied_since: float | None = None
        self.dead: str | None = None

    @property
    def backlog_s(self) -> float:
        return self.queued_samples / SAMPLE_RATE

    def occupied_s(self) -> float:
        since = self._occupied_since
        return self._occupied_total + (time.monotonic() - since if since is not None else 0.0)

    async def ready(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        sock, self._sock = self._sock, None
        assert sock is not None
        protocol = _Frames(self._on_message, self.kill)
        transport, _ = await loop.create_unix_connection(lambda: protocol, sock=sock)
        self._transport = transport
        fut = asyncio.get_running_loop().create_future()
        self._current = _Request(b"", 0, fut)  # the process announces itself unasked
        self._occupied_since = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                reply = await fut
        except TimeoutError:
            self.kill("did not start in time")
            raise AdapterUnavailable("pocketsphinx worker did not start in time") from None
        except AdapterError as exc:
            raise AdapterUnavailable(f"pocketsphinx worker failed to start: {exc}") from None
        if reply != "ready":
            raise AdapterUnavailable(f"pocketsphinx worker failed to start: {reply}")
        self._occupied_total = 0.0  # starting up is not decoding

    def _on_message(self, message: Any) -> None:
        done, self._current = self._current, None
        if done is None:
            self.kill("the decoding process sent an unexpected reply")
            return
        self.queued_samples -= done.samples
        self._next()
        if not done.future.done():
            status, payload = message
            if status == "ok":
                done.future.set_result(payload)
            else:
                done.future.set_exception(AdapterError(f"pocketsphinx: {payload}"))

    def _next(self) -> None:
        """Hand the process its next request, urgent ones first; or close the busy interval."""
        if self._current is not None:
            return
        queue = self._urgent or self._queue
        if queue:
            self._current = queue.popleft()
            assert self._transport is not None
            self._transport.write(self._current.frame)
        elif self._occupied_since is not None:
            self._occupied_total += time.monotonic() - self._occupied_since
            self._occupied_since = None

    def send(self, *request: Any, samples: int = 0, urgent: bool = False) -> asyncio.Future:
        """Queue one request (never waits); the future settles with its reply. `samples` is the audio it
        carries, counted in the backlog until the reply comes; `urgent` requests go before the others."""
        if self.dead is not None or self._transport is None or self._transport.is_closing():
            raise AdapterError(f"pocketsphinx worker unavailable: {self.dead or 'not started'}")
        fut = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._queue).append(_Request(_Frames.encode(request), samples, fut))
        self.queued_samples += samples
        if self._occupied_since is None:
            self._occupied_since = time.monotonic()
        self._next()
        return fut

    def expedite(self, fut: asyncio.Future) -> None:
        """Move the queued request behind `fut` to the urgent queue (a no-op once it went to the process)."""
        for req in self._queue:
            if req.future is fut:
                self._queue.remove(req)
                self._urgent.append(req)
                return

    async def call(self, *request: Any, samples: int = 0, urgent: bool = False) -> Any:
        return await self.send(*request, samples=samples, urgent=urgent)

    def kill(self, reason: str) -> None:
        if self.dead is None:
            self.dead = reason
        if self._transport is not None:
            self._transport.abort()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        lost = [*([self._current] if self._current is not None else []), *self._urgent, *self._queue]
        self._current = None
        self._urgent.clear()
        self._queue.clear()
        for req in lost:
            if not req.future.done():
                req.future.set_exception(AdapterError(f"pocketsphinx worker unavailable: {reason}"))
        self.queued_samples = 0
        self._occupied_since = None
        if self._process.is_alive():
            self._process.kill()
        self._reap()

    def _reap(self, tries: int = 50) -> None:
        """Collect the dead process's exit status (a zombie otherwise), without ever waiting on the loop: look
        again every 0.1 s, for at most `tries` looks."""
        self._process.join(0)
        if self._process.exitcode is None and tries > 0:
            try:
                asyncio.get_running_loop().call_later(0.1, self._reap, tries - 1)
            except RuntimeError:  # no loop (shut down): the multiprocessing module reaps it at exit
                pass

    async def stop(self) -> None:
        if self.dead is None:
            try:
                async with asyncio.timeout(self._stop_timeout_s):
                    await self.call("stop")
            except (AdapterError, TimeoutError):
                pass
        self.kill("stopped")
        await asyncio.to_thread(self._process.join, 5)


class PocketsphinxRecognizer(SpeechRecognizer):
    name = "pocketsphinx"

    def __init__(self, config: PocketsphinxConfig | None = None) -> None:
        self.config = config or PocketsphinxConfig()
        self._workers: list[_Worker] = []
        self._starting: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._worker_ids = itertools.count()

    async def start(self) -> None:
        """Start the missing workers. The start runs in a task of its own, which every caller waits on and none
        can cancel: a session that ends while the workers start (a client that leaves mid-utterance) used to
        cancel it half-way, orphaning two processes per such session (never used, never reaped) and leaving
        the next utterance to start two more."""
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._start(), name="pocketsphinx-start")
            self._starting.add_done_callback(_consume)  # a failure nobody waits for any more is no report
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        self._workers = [w for w in self._workers if w.dead is None]
        missing = self.config.workers - len(self._workers)
        if missing <= 0:
            return
        try:
            fresh = [_Worker(self.config, next(self._worker_ids)) for _ in range(missing)]
        except OSError as exc:
            raise AdapterUnavailable(f"cannot start pocketsphinx workers: {exc}") from exc
        try:
            await asyncio.gather(*(w.ready(self.config.start_timeout_s) for w in fresh))
        except BaseException:
            for w in fresh:
                w.kill("start failed")
            raise
        self._workers.extend(fresh)

    def stream(self, options: RecognitionOptions | None = None) -> RecognitionStream:
        """One utterance; `options` do not apply (one English model, no prompt)."""
        return PocketsphinxStream(self, next(self._ids))

    async def worker(self) -> _Worker:
        """The least loaded live worker (audio queued, then streams); starts workers on first use or after a death."""
        if not any(w.dead is None for w in self._workers):
            await self.start()
        return min((w for w in self._workers if w.dead is None), key=lambda w: (w.queued_samples, w.streams))

    def backlog(self) -> dict[str, float]:
        return {w.label: w.backlog_s for w in self._workers if w.dead is None}

    def occupancy(self) -> dict[str, float]:
        return {w.label: w.occupied_s() for w in self._workers if w.dead is None}

    async def aclose(self) -> None:
        if self._starting is not None:
            await cancel_and_wait(self._starting)  # its fresh workers are killed as it ends
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
        self._urgent = False
        self._request: asyncio.Future | None = None  # this stream's request in the worker's queue

    def expedite(self) -> None:
        self._urgent = True
        if self._worker is not None and self._request is not None:
            self._worker.expedite(self._request)

    async def _bound(self) -> _Worker:
        if self._worker is None:
            self._worker = await self._owner.worker()
            self._worker.streams += 1
        return self._worker

    def _release(self) -> None:
        if self._worker is not None:
            self._worker.streams -= 1

    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        if self._closed:
            raise AdapterError("recognition stream already finished")
        cfg = self._owner.config
        if self._samples / SAMPLE_RATE >= cfg.max_utterance_s:
            return None  # bounded: audio past the limit is ignored rather than growing the lattice
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        worker = await self._bound()
        step = max(1, int(cfg.max_push_s * SAMPLE_RATE))
        text = None
        for start in range(0, len(pcm), step):
            chunk = pcm[start:start + step]
            self._samples += len(chunk)
            self._since_partial += len(chunk)
            last = start + step >= len(pcm)
            want = partial and last and self._since_partial >= cfg.partial_interval_s * SAMPLE_RATE
            if want:
                self._since_partial = 0
            self._request = worker.send("push", self._sid, chunk.tobytes(), want, samples=len(chunk),
                                        urgent=self._urgent)
            try:
                text = await self._request
            finally:
                self._request = None
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
            text, raw_words = await worker.call("finish", self._sid, urgent=True)
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
            try:  # nobody waits for the reply: closing never waits on a busy worker
                self._worker.send("close", self._sid).add_done_callback(_consume)
            except AdapterError:
                pass
            finally:
                self._release()


def _consume(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved: a close that failed needs no report


def _posterior(prob: float | None) -> float | None:
    """pocketsphinx gives word posteriors as log values in its own base; map to 0..1."""
    if prob is None or math.isnan(prob):
        return None
    value = math.exp(prob) if prob <= 0 else prob
    return max(0.0, min(1.0, value))
