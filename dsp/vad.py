"""webrtcvad on 20 ms frames at 16 kHz: the embedded voice activity detector."""

from __future__ import annotations

import _webrtcvad
import numpy as np
import webrtcvad

SAMPLE_RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000


def aggressiveness_for(threshold: float) -> int:
    """Map the Realtime `threshold` (0..1, higher = needs clearer speech) onto webrtcvad's modes 0..3."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError("threshold must be within 0.0 and 1.0")
    return min(3, int(threshold * 4))


class WebRtcVad:
    """Frame classifier; `is_speech` takes exactly one 20 ms int16 frame."""

    name = "webrtc"

    def __init__(self, threshold: float = 0.5) -> None:
        self._vad = webrtcvad.Vad(aggressiveness_for(threshold))
        self._handle = self._vad._vad

    def set_threshold(self, threshold: float) -> None:
        self._vad.set_mode(aggressiveness_for(threshold))

    def is_speech(self, frame: np.ndarray) -> bool:
        if frame.shape[0] != FRAME_SAMPLES:
            raise ValueError(f"webrtcvad needs {FRAME_SAMPLES}-sample frames, got {frame.shape[0]}")
        if frame.dtype != np.int16 or not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame, dtype=np.int16)
        # the extension reads the array's buffer as it is: no bytes copy, and not the wrapper's own checks
        # (done above), for a call made every 20 ms per session
        return _webrtcvad.process(self._handle, SAMPLE_RATE, frame, FRAME_SAMPLES)
