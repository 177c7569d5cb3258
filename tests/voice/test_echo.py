"""voice/echo.py: the echo gate: an onset during the agent's playback interrupts only when clearly louder than
the agent's own echo."""

from __future__ import annotations

import numpy as np

from voice.echo import CONFIRM_FRAMES, ECHO_FLOOR_DBFS, MARGIN_DB, EchoGate, rms_dbfs


def tone(dbfs: float, frames: int = 1, rate: int = 16000) -> list[np.ndarray]:
    """20 ms frames of a 300 Hz tone at an RMS of `dbfs`."""
    n = rate // 50
    t = np.arange(n * frames) / rate
    amp = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    pcm = (amp * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    return [pcm[i * n:(i + 1) * n] for i in range(frames)]


def test_echo_gate_without_echo_uses_the_floor():
    gate = EchoGate()
    assert gate.echo_level() == ECHO_FLOOR_DBFS
    assert gate.allow_barge_in(tone(ECHO_FLOOR_DBFS + MARGIN_DB + 5, 3))
    assert not gate.allow_barge_in(tone(ECHO_FLOOR_DBFS + MARGIN_DB - 5, 3))


def test_echo_gate_learns_the_echo_level():
    gate = EchoGate()
    for frame in tone(-30, 50):
        gate.observe(frame)
    assert abs(gate.echo_level() - (-30)) < 1.0
    assert not gate.allow_barge_in(tone(-25, 3))  # echo-like: 5 dB above the echo
    assert gate.allow_barge_in(tone(-15, 3))  # the user, clearly louder


def test_echo_gate_leaves_the_onset_out_of_the_estimate():
    gate = EchoGate()
    for frame in tone(-45, 40):
        gate.observe(frame)
    onset = tone(-20, 3)
    for frame in onset:  # the transport saw the onset frames before the VAD called them speech
        gate.observe(frame)
    assert gate.echo_level(exclude_newest=3) < -44
    assert gate.allow_barge_in(onset)


def test_echo_gate_lets_a_held_onset_through_when_the_speech_grows_louder():
    gate = EchoGate()
    assert not gate.allow_barge_in(tone(-58, 3))  # a breath before the word: held
    assert gate.pending
    assert not any(gate.confirm(f) for f in tone(-55, 10))  # still quiet
    confirmations = [gate.confirm(f) for f in tone(-25, CONFIRM_FRAMES + 5)]
    assert confirmations.count(True) == 1 and confirmations[CONFIRM_FRAMES - 1]
    assert not gate.pending


def test_rms_dbfs():
    assert rms_dbfs(np.zeros(320, np.int16)) == -120.0
    assert abs(rms_dbfs(tone(-20)[0]) - (-20)) < 0.2
