"""Streaming sample-rate conversion (soxr), so chunk boundaries never click or drift."""

from __future__ import annotations

import numpy as np
import soxr


class StreamResampler:
    """Mono int16 in, mono int16 out; keeps filter state across `process` calls."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._passthrough = in_rate == out_rate
        self._stream = (
            None if self._passthrough else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        )

    def process(self, pcm: np.ndarray, last: bool = False) -> np.ndarray:
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        if self._stream is None:
            return pcm
        return self._stream.resample_chunk(pcm, last=last)

    def flush(self) -> np.ndarray:
        return self.process(np.zeros(0, dtype=np.int16), last=True)


def resample(pcm: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Whole-buffer conversion for files and tests."""
    pcm = np.ascontiguousarray(pcm, dtype=np.int16)
    if in_rate == out_rate:
        return pcm
    return soxr.resample(pcm, in_rate, out_rate, quality="HQ")
