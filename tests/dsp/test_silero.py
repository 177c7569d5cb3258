"""Streaming Silero VAD (dsp/silero.py) on real speech, silence and noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dsp.resample import resample
from dsp.silero import WINDOW_SAMPLES, FrameVad, SileroUnavailable, SileroVad, default_model_path, make_frame_vad
from tests.helpers import ROOT, SPEECH


def load(path: Path) -> np.ndarray:
    pcm, rate = sf.read(path, dtype="int16")
    return resample(pcm, rate, 16000)


def test_speech_gives_speech_windows():
    for name in ("goforward.wav", "cards-005.wav", "librivox-0890.wav"):
        pcm = load(SPEECH / name)
        probs = np.array(SileroVad().process(pcm))
        assert len(probs) == len(pcm) // WINDOW_SAMPLES
        assert (probs > 0.5).mean() > 0.4, name
        assert probs.max() > 0.9


def test_silence_and_noise_give_few_speech_windows():
    rng = np.random.default_rng(1)
    silence = np.zeros(16000 * 3, np.int16)
    white = (rng.standard_normal(16000 * 5) * 0.05 * 32767).astype(np.int16)  # about -26 dBFS
    for pcm in (silence, white):
        probs = np.array(SileroVad().process(pcm))
        assert (probs > 0.5).mean() <= 0.02


def test_leak_test_recording_has_speech_and_pauses():
    pcm = load(ROOT / "fixtures" / "audio" / "vad" / "leak-test.wav")  # 8 kHz, resampled
    probs = np.array(SileroVad().process(pcm))
    speech = (probs > 0.5).mean()
    assert 0.1 < speech < 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_chunking_gives_the_probabilities_of_one_push(seed):
    pcm = load(SPEECH / "cards-001.wav")
    whole = SileroVad().process(pcm)
    rng = np.random.default_rng(seed)
    vad = SileroVad()
    pieces, i = [], 0
    while i < len(pcm):
        n = int(rng.integers(0, 1500))  # includes empty chunks and chunks much shorter than a window
        pieces.extend(vad.process(pcm[i : i + n]))
        i += n
    assert len(pieces) == len(whole)
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-6)


def test_state_matters_and_reset_forgets_it():
    pcm = load(SPEECH / "cards-001.wav")
    vad = SileroVad()
    first = vad.process(pcm)
    carried = vad.process(pcm)  # same audio again, with the state of the first pass
    assert not np.allclose(first[:5], carried[:5], atol=1e-4)
    vad.reset()
    np.testing.assert_allclose(vad.process(pcm), first, atol=1e-6)


def test_is_speech_on_20ms_frames_follows_the_window_probabilities():
    pcm = load(SPEECH / "goforward.wav")
    frames = [pcm[i : i + 320] for i in range(0, len(pcm) - 319, 320)]
    vad = SileroVad(threshold=0.5)
    decisions = [vad.is_speech(f) for f in frames]
    probs = SileroVad().process(pcm[: len(frames) * 320])
    # a frame's decision is the latest completed window's probability against the threshold
    expected = []
    for k in range(len(frames)):
        done = (k + 1) * 320 // WINDOW_SAMPLES  # windows completed after frame k
        expected.append(done > 0 and probs[done - 1] > 0.5)
    assert decisions == expected
    assert sum(decisions) > len(frames) * 0.4
    assert isinstance(vad, FrameVad)


def test_threshold_changes_decisions():
    pcm = load(SPEECH / "goforward.wav")
    counts = []
    for threshold in (0.05, 0.5, 0.995):
        vad = SileroVad(threshold)
        counts.append(sum(vad.is_speech(pcm[i : i + 320]) for i in range(0, len(pcm) - 319, 320)))
    assert counts[0] > counts[1] > counts[2]
    with pytest.raises(ValueError):
        SileroVad(1.5)


def test_frame_vad_factory():
    silero = make_frame_vad("silero", 0.6)
    assert isinstance(silero, SileroVad) and silero.threshold == 0.6
    webrtc = make_frame_vad("webrtc", 0.5)
    assert webrtc.name == "webrtc" and isinstance(webrtc, FrameVad)
    frame = np.zeros(320, np.int16)
    assert silero.is_speech(frame) is False and webrtc.is_speech(frame) is False
    with pytest.raises(ValueError):
        make_frame_vad("nope")


def test_missing_model_file_is_reported(tmp_path):
    assert default_model_path().name == "silero_vad_v6.onnx"
    with pytest.raises(SileroUnavailable, match="not found"):
        SileroVad(model_path=tmp_path / "missing.onnx")
