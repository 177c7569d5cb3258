"""voice/endpointer.py: speech start and stop from per-frame VAD decisions, with padding and a silence window."""

import numpy as np

from dsp import FRAME_SAMPLES
from voice.endpointer import Endpointer, SpeechStarted, SpeechStopped

SILENT = np.zeros(FRAME_SAMPLES, np.int16)


def _run(ep, pattern):
    return [(i, ev) for i, voiced in enumerate(pattern) if (ev := ep.push(SILENT, voiced)) is not None]


def test_endpointer_start_stop_and_padding():
    ep = Endpointer(prefix_padding_ms=100, silence_duration_ms=200)
    pattern = [False] * 20 + [True] * 10 + [False] * 15
    events = _run(ep, pattern)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechStopped]
    (i_start, start), (i_stop, stop) = events
    assert i_start == 22  # after three voiced frames
    assert start.audio_start_ms == 20 * 20 - 100  # onset minus the padding
    assert len(start.prefix) == 5 + 3  # padding frames plus the onset frames
    assert stop.audio_end_ms == 30 * 20  # end of the last voiced frame
    assert i_stop == 29 + 10  # ten silent frames make 200 ms


def test_endpointer_ignores_blips_and_short_pauses():
    ep = Endpointer(prefix_padding_ms=300, silence_duration_ms=300)
    assert _run(ep, [True, True, False] * 5) == []  # never three voiced frames in a row
    events = _run(ep, [True] * 5 + [False] * 10 + [True] * 5 + [False] * 16)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechStopped]  # a 200 ms pause is not a turn end
