"""Session audio formats to and from the 16 kHz mono int16 the pipeline runs on."""

from __future__ import annotations

import numpy as np

from dsp import OPUS_RATE, OpusDecoder, OpusEncoder, PolyphaseResampler, StreamResampler
from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voice.session_config import AudioFormat, OpusFormat, PcmaFormat, PcmFormat, PcmuFormat

PIPELINE_RATE = 16000


class AudioFormatError(ValueError):
    """Audio that does not fit the session's declared format."""


def format_rate(fmt: AudioFormat) -> int:
    if isinstance(fmt, PcmFormat):
        return fmt.rate
    if isinstance(fmt, OpusFormat):
        return OPUS_RATE
    return 8000


class InputDecoder:
    """Client payloads in the session format -> 16 kHz int16, resampler state kept across appends."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self.rate = format_rate(fmt)
        self._resampler = PolyphaseResampler(self.rate, PIPELINE_RATE)  # no block delay before VAD
        self._opus = OpusDecoder() if isinstance(fmt, OpusFormat) else None

    def decode(self, data: bytes) -> np.ndarray:
        if isinstance(self.format, PcmFormat):
            if len(data) % 2:
                raise AudioFormatError("audio/pcm payload must be whole 16-bit samples (an even number of bytes)")
            pcm = np.frombuffer(data, dtype="<i2")
        elif isinstance(self.format, PcmuFormat):
            pcm = ulaw_decode(data)
        elif isinstance(self.format, PcmaFormat):
            pcm = alaw_decode(data)
        else:
            assert self._opus is not None
            try:
                pcm = self._opus.decode(data)
            except ValueError as exc:
                raise AudioFormatError(str(exc)) from exc
        return self._resampler.process(pcm)

    def input_ms(self, data: bytes) -> float:
        """Duration of a payload in the client's own format (before resampling)."""
        if isinstance(self.format, PcmFormat):
            return len(data) / 2 / self.rate * 1000.0
        if isinstance(self.format, OpusFormat):
            return 20.0
        return len(data) / 8.0


class OutputEncoder:
    """Synthesised PCM at any rate -> payloads in the session's output format."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self.rate = format_rate(fmt)
        self._resampler: StreamResampler | None = None
        self._opus = OpusEncoder() if isinstance(fmt, OpusFormat) else None

    def _to_rate(self, pcm: np.ndarray, rate: int) -> np.ndarray:
        if self._resampler is None or self._resampler.in_rate != rate:
            self._resampler = StreamResampler(rate, self.rate)
        return self._resampler.process(pcm)

    def encode(self, pcm: np.ndarray, rate: int) -> list[bytes]:
        return self._pack(self._to_rate(pcm, rate))

    def flush(self) -> list[bytes]:
        tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, np.int16)
        packets = self._pack(tail) if len(tail) else []
        if self._opus is not None:
            packets += self._opus.flush()
        return packets

    def _pack(self, pcm: np.ndarray) -> list[bytes]:
        if len(pcm) == 0:
            return []
        if isinstance(self.format, PcmFormat):
            return [pcm.astype("<i2").tobytes()]
        if isinstance(self.format, PcmuFormat):
            return [ulaw_encode(pcm)]
        if isinstance(self.format, PcmaFormat):
            return [alaw_encode(pcm)]
        assert self._opus is not None
        return self._opus.encode(pcm)

    def payload_ms(self, payload: bytes) -> float:
        if isinstance(self.format, PcmFormat):
            return len(payload) / 2 / self.rate * 1000.0
        if isinstance(self.format, OpusFormat):
            return 20.0
        return len(payload) / 8.0
