"""Streaming noise suppression with RNNoise (`pyrnnoise`'s build of xiph's library): 16 kHz in, 16 kHz out.

RNNoise runs on 10 ms frames at 48 kHz, which is 160 samples of the 16 kHz pipeline: each 160 samples go up to
48 kHz (polyphase, 3x), through the network, and back down, so a 20 ms append comes out as 20 ms at once. The
signal is delayed by about 22 ms: 20 ms inside RNNoise (its window and lookahead), 2.3 ms in the two filters.
A chunk that is not a multiple of 10 ms leaves its tail for the next call. About 40 us of CPU per 10 ms frame
(the C call releases the GIL): well under 1 % of a core per session. `strength` mixes the denoised signal with
the original, delayed to match (1.0: fully denoised).
"""

from __future__ import annotations

import ctypes

import numpy as np
from pyrnnoise import rnnoise as _rnnoise

from dsp.polyphase import PolyphaseResampler

RATE = 16000
NET_RATE = _rnnoise.SAMPLE_RATE  # 48000
NET_FRAME = _rnnoise.FRAME_SIZE  # 480 samples: 10 ms at 48 kHz
FRAME = NET_FRAME * RATE // NET_RATE  # 160 samples: 10 ms at 16 kHz
NET_DELAY = 2 * FRAME  # RNNoise's own delay, 20 ms (measured: output lags input by 356 samples in all)
# A new network has no noise estimate: its first ~80 ms let loud noise through (RMS 2500 white noise comes out at
# 320, 200, 70 in 20 ms frames, then under 25), enough for VAD to take the start of a stream for speech; and
# webrtcvad, whose own noise floor adapts, takes the quiet residue that follows digital silence for speech for
# ~100 ms. So the output fades in: silent for 160 ms, then a 100 ms ramp (measured: no frame voiced at the
# default VAD threshold for white noise of RMS 800 to 6000; the most sensitive thresholds, under 0.5, still
# see ~70 ms). A stream starts when noise reduction is turned on, mostly as the session opens, before anyone
# speaks; turned on mid-sentence, it mutes the next 160 ms.
MUTE, RAMP = 16 * FRAME, 10 * FRAME
_FLOAT_P = ctypes.POINTER(ctypes.c_float)


class Denoiser:
    """One stream's state (RNNoise is recurrent: a state per stream, never shared). `close()` frees it."""

    def __init__(self, strength: float = 1.0) -> None:
        self.strength = float(min(1.0, max(0.0, strength)))
        self._state = _rnnoise.create()
        self._up = PolyphaseResampler(RATE, NET_RATE)
        self._down = PolyphaseResampler(NET_RATE, RATE)
        self._carry = np.zeros(0, dtype=np.int16)
        self._frame = np.zeros(NET_FRAME, dtype=np.float32)  # the network works in place, int16 scale
        self._ptr = self._frame.ctypes.data_as(_FLOAT_P)
        self.speech_prob = 0.0  # the network's voice probability for the last frame
        self.delay = NET_DELAY + round((self._up.delay_ms + self._down.delay_ms) * RATE / 1000)  # samples
        self.delay_ms = self.delay * 1000 / RATE
        self._dry = np.zeros(self.delay, dtype=np.float32)  # the input, held back by `delay` for the mix
        self._emitted = 0  # samples out so far (the fade-in at the start)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Denoise mono int16 at 16 kHz; returns every whole 10 ms of what came in so far."""
        if self._state is None:
            raise RuntimeError("denoiser is closed")
        buf = np.concatenate([self._carry, pcm]) if len(self._carry) else np.asarray(pcm, dtype=np.int16)
        n = len(buf) // FRAME * FRAME
        self._carry = buf[n:].copy()
        if n == 0:
            return np.zeros(0, dtype=np.int16)
        up = self._up.process(buf[:n])
        out = np.empty(len(up), dtype=np.float32)
        for i in range(0, len(up) - NET_FRAME + 1, NET_FRAME):
            self._frame[:] = up[i:i + NET_FRAME]
            self.speech_prob = float(_rnnoise.lib.rnnoise_process_frame(self._state, self._ptr, self._ptr))
            out[i:i + NET_FRAME] = self._frame
        tail = len(up) // NET_FRAME * NET_FRAME
        out[tail:] = up[tail:]  # never happens with a 3x polyphase filter; kept so lengths always match
        down = self._down.process(np.clip(out, -32768, 32767).astype(np.int16))
        if self.strength < 1.0:
            held = np.concatenate([self._dry, buf[:n].astype(np.float32)])
            dry, self._dry = held[:len(down)], held[len(down):]
            mixed = self.strength * down.astype(np.float32) + (1.0 - self.strength) * dry
            down = np.clip(mixed, -32768, 32767).astype(np.int16)
        start, self._emitted = self._emitted, self._emitted + len(down)
        if start < MUTE + RAMP:
            t = np.arange(start, start + len(down), dtype=np.float32)
            down = (down * np.clip((t - MUTE) / RAMP, 0.0, 1.0)).astype(np.int16)
        return down

    def close(self) -> None:
        if self._state is not None:
            _rnnoise.destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()
