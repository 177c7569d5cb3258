"""Echo gate: the agent must not take its own voice, played back through the user's speaker, for a barge-in.

Browsers cancel most of the echo (the page asks for echoCancellation), but what is left can still look like
speech to the VAD. While the agent is audible and the user is not speaking, whatever reaches the microphone
is echo (or room noise): the gate records the level of those frames. When the VAD then reports a speech
onset during playback, the onset counts as a barge-in only when it is clearly louder than that echo:

    echo level   = 90th percentile of the frame RMS (dBFS) seen during the last 2 s of playback,
                   never below ECHO_FLOOR_DBFS (-50 dBFS), which also stands in while nothing was seen yet
    barge-in     = RMS of the onset frames >= echo level + MARGIN_DB (10 dB)

So with no echo at all an onset needs -40 dBFS (ordinary speech into a headset or laptop microphone is
-35 to -20 dBFS), and over a -30 dBFS echo it needs -20 dBFS. The onset frames themselves are the newest
frames the gate saw; they are left out of the estimate so that the user's own voice does not raise the bar.

The VAD often fires on the quiet first syllable or the breath before it (webrtcvad triggers near -58 dBFS),
so a refused onset is held, not forgotten: while that utterance lasts, `confirm(frame)` checks its frames
against the same bar, and once CONFIRM_FRAMES consecutive frames (60 ms) all clear it the barge-in goes ahead.

Limits: the gate learns the echo level from the input alone. Until it has heard some echo, the bar is the floor
(-40 dBFS for an onset), so loud echo without browser echo cancellation can still interrupt at the start of a
reply. And a refused onset only keeps the agent talking: the utterance is still transcribed and answered as a
user turn (the turn controller decides that, not this gate).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

MARGIN_DB = 10.0  # how much louder than the echo an onset must be to interrupt the agent
ECHO_FLOOR_DBFS = -50.0  # the echo level assumed when less is measured (or nothing yet)
HISTORY_FRAMES = 100  # 2 s of 20 ms frames
MIN_FRAMES = 5  # fewer observations than this: use the floor
PERCENTILE = 90.0
CONFIRM_FRAMES = 3  # a held onset is let through once this many consecutive frames (60 ms) clear the bar


def rms_dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 samples in dB relative to full scale (-inf clamped to -120)."""
    if len(pcm) == 0:
        return -120.0
    x = np.asarray(pcm, dtype=np.float64)
    rms = float(np.sqrt(np.mean(x * x)))
    return 20.0 * float(np.log10(rms / 32768.0)) if rms > 0 else -120.0


class EchoGate:
    def __init__(self, *, margin_db: float = MARGIN_DB, floor_dbfs: float = ECHO_FLOOR_DBFS,
                 history_frames: int = HISTORY_FRAMES) -> None:
        self.margin_db = margin_db
        self.floor_dbfs = floor_dbfs
        self._levels: deque[float] = deque(maxlen=history_frames)
        self.frames_observed = 0
        self.last_decision: dict[str, float | bool] | None = None
        self.pending = False  # an onset was refused and its utterance is still being checked
        self._bar_dbfs = 0.0
        self._recent: deque[float] = deque(maxlen=CONFIRM_FRAMES)  # levels of the held utterance's newest frames

    def observe(self, frame: np.ndarray) -> None:
        """A frame heard while the agent is audible and the user is not speaking: echo (or room noise)."""
        self._levels.append(rms_dbfs(frame))
        self.frames_observed += 1

    def echo_level(self, exclude_newest: int = 0) -> float:
        """The estimated echo level in dBFS, never below the floor."""
        levels = list(self._levels)
        if exclude_newest > 0:
            levels = levels[:-exclude_newest]
        if len(levels) < MIN_FRAMES:
            return self.floor_dbfs
        return max(self.floor_dbfs, float(np.percentile(levels, PERCENTILE)))

    def allow_barge_in(self, onset_frames: Sequence[np.ndarray]) -> bool:
        """True when the speech onset is clearly louder than the echo: the user, not the agent's own voice."""
        onset = (
            np.concatenate([np.asarray(f, dtype=np.int16) for f in onset_frames])
            if len(onset_frames)
            else np.zeros(0, np.int16)
        )
        onset_db = rms_dbfs(onset)
        echo_db = self.echo_level(exclude_newest=len(onset_frames))
        allowed = onset_db >= echo_db + self.margin_db
        self.last_decision = {"onset_dbfs": round(onset_db, 1), "echo_dbfs": round(echo_db, 1), "allowed": allowed}
        self.pending = not allowed
        self._bar_dbfs = echo_db + self.margin_db
        self._recent.clear()
        return allowed

    def confirm(self, frame: np.ndarray) -> bool:
        """A frame of the utterance whose onset was refused: True (once) when the speech clears the bar after all."""
        if not self.pending:
            return False
        self._recent.append(rms_dbfs(frame))
        if len(self._recent) < CONFIRM_FRAMES or min(self._recent) < self._bar_dbfs:
            return False
        self.pending = False
        if self.last_decision is not None:
            self.last_decision = {**self.last_decision, "allowed": True, "confirmed_late": True}
        return True

    def reset(self) -> None:
        self._levels.clear()
        self.pending = False
        self._recent.clear()
