"""The agent's voice as an outbound audio track, and decoded caller frames as mono PCM."""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

TRACK_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
FRAME_S = FRAME_SAMPLES / TRACK_RATE
TIME_BASE = fractions.Fraction(1, TRACK_RATE)
OUTPUT_FORMAT = {"type": "audio/pcm", "rate": TRACK_RATE}  # over WebRTC the agent's audio always travels on the track


class AgentAudioTrack(MediaStreamTrack):
    """The outbound track: queued 48 kHz PCM in 20 ms frames, paced in real time, silence when idle.

    `on_playback(type, response_id)` is told when playback of a response starts (`output_audio_buffer.started`)
    and when its audio has fully played (`output_audio_buffer.stopped`)."""

    kind = "audio"

    def __init__(self, on_playback: Callable[[str, str | None], None] | None = None) -> None:
        super().__init__()
        self._chunks: deque[tuple[str | None, np.ndarray]] = deque()
        self._offset = 0  # samples of the first chunk already played
        self.queued_samples = 0
        self._on_playback = on_playback
        self._playing: str | None = None
        self._finished: set[str | None] = set()
        self._start: float | None = None
        self._pts = 0
        self.frames_sent = 0
        self.audio_frames_sent = 0

    @property
    def playing(self) -> str | None:
        return self._playing

    def enqueue(self, response_id: str | None, pcm: np.ndarray) -> None:
        if len(pcm):
            self._chunks.append((response_id, np.asarray(pcm, dtype=np.int16)))
            self.queued_samples += len(pcm)

    def holds(self, response_id: str | None) -> bool:
        """Whether audio of this response is playing or queued."""
        if response_id is None:
            return False
        return self._playing == response_id or any(r == response_id for r, _ in self._chunks)

    def finish(self, response_id: str | None) -> None:
        """No more audio is coming for this response: `stopped` follows once the queue has played out."""
        self._finished.add(response_id)

    def flush(self) -> str | None:
        """Drop everything queued (barge-in); returns the response that was playing or queued, if any."""
        current = self._playing if self._playing is not None else (self._chunks[0][0] if self._chunks else None)
        had_audio = self._playing is not None or bool(self._chunks)
        self._chunks.clear()
        self._offset = 0
        self.queued_samples = 0
        self._playing = None
        self._finished.clear()
        return current if had_audio else None

    def _notify(self, kind: str, response_id: str | None) -> None:
        if self._on_playback is not None:
            try:
                self._on_playback(kind, response_id)
            except Exception:  # a notification must never stop the audio
                log.exception("playback notification failed")

    def _take(self) -> np.ndarray:
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        filled = 0
        while filled < FRAME_SAMPLES and self._chunks:
            rid, chunk = self._chunks[0]
            if self._playing != rid:
                if self._playing is not None:
                    self._notify("output_audio_buffer.stopped", self._playing)
                self._playing = rid
                self._notify("output_audio_buffer.started", rid)
            n = min(FRAME_SAMPLES - filled, len(chunk) - self._offset)
            out[filled:filled + n] = chunk[self._offset:self._offset + n]
            filled += n
            self._offset += n
            self.queued_samples -= n
            if self._offset >= len(chunk):
                self._chunks.popleft()
                self._offset = 0
        if filled:
            self.audio_frames_sent += 1
        if not self._chunks and self._playing is not None and self._playing in self._finished:
            self._finished.discard(self._playing)
            self._notify("output_audio_buffer.stopped", self._playing)
            self._playing = None
        return out

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
            self._pts = 0
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / TRACK_RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        pcm = self._take()
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = TRACK_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self.frames_sent += 1
        return frame


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame (s16 or float, packed or planar, any channels) as mono int16."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        mono = data.mean(axis=0) if data.shape[0] > 1 else data[0]
    else:
        flat = data.reshape(-1)
        mono = flat.reshape(-1, channels).mean(axis=1) if channels > 1 else flat
    if np.issubdtype(mono.dtype, np.floating) and frame.format.name.startswith(("flt", "dbl")):
        mono = np.clip(mono * 32767.0, -32768, 32767)
    return np.asarray(mono).astype(np.int16)
