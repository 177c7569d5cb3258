"""Speech start/stop from per-frame VAD decisions, with prefix padding and a silence window.

Works in audio time (frames of 20 ms at 16 kHz), never wall time, so replay speed does not change
where turns end.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from dsp import FRAME_SAMPLES

FRAME_MS = 20


@dataclass(frozen=True)
class SpeechStarted:
    audio_start_ms: int  # includes the prefix padding, as the Realtime protocol reports it
    prefix: tuple[np.ndarray, ...]  # padding + onset frames, to feed the recogniser first


@dataclass(frozen=True)
class SpeechStopped:
    audio_end_ms: int  # end of the last voiced frame


class Endpointer:
    def __init__(self, *, prefix_padding_ms: int, silence_duration_ms: int, start_frames: int = 3) -> None:
        self.prefix_frames = prefix_padding_ms // FRAME_MS
        self.silence_frames = max(1, silence_duration_ms // FRAME_MS)
        self.start_frames = start_frames
        self._ring: deque[np.ndarray] = deque(maxlen=self.prefix_frames + start_frames)
        self._voiced_run = 0
        self._silent_run = 0
        self._last_voiced_end_ms = 0
        self.frames_seen = 0
        self.in_speech = False

    def reconfigure(self, *, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        self.prefix_frames = prefix_padding_ms // FRAME_MS
        self.silence_frames = max(1, silence_duration_ms // FRAME_MS)
        self._ring = deque(self._ring, maxlen=self.prefix_frames + self.start_frames)

    @property
    def now_ms(self) -> int:
        return self.frames_seen * FRAME_MS

    def push(self, frame: np.ndarray, voiced: bool) -> SpeechStarted | SpeechStopped | None:
        assert len(frame) == FRAME_SAMPLES
        self.frames_seen += 1
        end_ms = self.now_ms
        if not self.in_speech:
            self._ring.append(frame)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self.start_frames:
                self.in_speech = True
                self._silent_run = 0
                self._last_voiced_end_ms = end_ms
                onset_ms = end_ms - self.start_frames * FRAME_MS
                prefix = tuple(self._ring)
                self._ring.clear()
                start_ms = max(0, onset_ms - self.prefix_frames * FRAME_MS)
                return SpeechStarted(audio_start_ms=start_ms, prefix=prefix)
            return None
        if voiced:
            self._silent_run = 0
            self._last_voiced_end_ms = end_ms
            return None
        self._silent_run += 1
        if self._silent_run >= self.silence_frames:
            self.in_speech = False
            self._voiced_run = 0
            return SpeechStopped(audio_end_ms=self._last_voiced_end_ms)
        return None

    @property
    def silent_frames(self) -> int:
        """Unvoiced frames in a row while in speech (the endpoint comes at `silence_frames`)."""
        return self._silent_run if self.in_speech else 0

    def reset(self) -> None:
        self._ring.clear()
        self._voiced_run = 0
        self._silent_run = 0
        self.in_speech = False
