"""Opus at 48 kHz mono in 20 ms packets (opuslib over libopus), for apps that prefer it to PCM."""

from __future__ import annotations

import numpy as np
import opuslib

OPUS_RATE = 48000
OPUS_FRAME_SAMPLES = OPUS_RATE // 50  # 20 ms


class OpusError(ValueError):
    """A packet that libopus refused."""


class OpusEncoder:
    """Buffers PCM and emits one packet per complete 20 ms frame."""

    def __init__(self, bitrate: int = 32000) -> None:
        self._enc = opuslib.Encoder(OPUS_RATE, 1, opuslib.APPLICATION_VOIP)
        self._enc.bitrate = bitrate
        self._pending = np.zeros(0, dtype=np.int16)

    def encode(self, pcm: np.ndarray) -> list[bytes]:
        buf = np.concatenate([self._pending, np.asarray(pcm, dtype=np.int16)])
        n = len(buf) // OPUS_FRAME_SAMPLES
        frames = buf[: n * OPUS_FRAME_SAMPLES].reshape(n, OPUS_FRAME_SAMPLES)
        packets = [self._enc.encode(frame.tobytes(), OPUS_FRAME_SAMPLES) for frame in frames]
        self._pending = buf[n * OPUS_FRAME_SAMPLES:]
        return packets

    def flush(self) -> list[bytes]:
        """Pad the last partial frame with silence so no speech is dropped."""
        if len(self._pending) == 0:
            return []
        pad = np.zeros(OPUS_FRAME_SAMPLES - len(self._pending), dtype=np.int16)
        return self.encode(pad)


class OpusDecoder:
    def __init__(self) -> None:
        self._dec = opuslib.Decoder(OPUS_RATE, 1)

    def decode(self, packet: bytes) -> np.ndarray:
        if not packet:
            raise OpusError("empty Opus packet")
        try:
            pcm = self._dec.decode(packet, 5760)  # the largest frame Opus allows (120 ms)
        except opuslib.OpusError as exc:
            raise OpusError(f"invalid Opus packet: {exc}") from exc
        return np.frombuffer(pcm, dtype=np.int16)
