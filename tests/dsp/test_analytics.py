"""dsp/analytics.py: per-utterance analytics: labels on recognisable signals, finite summaries, no audio kept."""

from __future__ import annotations

import glob
import json
import math
import os

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

import dsp
from dsp import analytics
from dsp.analytics import UtteranceAnalytics, classify
from tests.helpers import SPEECH

SPEECH_DIR = str(SPEECH)
SR = 16000
# syllables counted by hand from fixtures/audio/speech/transcripts.tsv
SYLLABLES = {"librivox-0870": 31, "librivox-0890": 20, "librivox-0920": 27, "cards-005": 10, "goforward": 6}


def load(name: str) -> np.ndarray:
    y, sr = sf.read(os.path.join(SPEECH_DIR, f"{name}.wav"), dtype="float32")
    assert sr == SR
    return y


def summarise(y: np.ndarray, chunk: int | None = 320) -> dsp.AudioAnalytics:
    stream, acc = dsp.StreamingFeatures(), UtteranceAnalytics()
    if chunk is None:
        acc.add(stream.push(y))
    else:
        for i in range(0, len(y), chunk):
            acc.add(stream.push(y[i:i + chunk]))
    return acc.summary()


def at_dbfs(y: np.ndarray, dbfs: float) -> np.ndarray:
    return (y * (10 ** (dbfs / 20) / np.sqrt(np.mean(y.astype(np.float64) ** 2)))).astype(np.float32)


def whisper_like(seconds=3.0, dbfs=-38.0) -> np.ndarray:
    """Breathy noise shaped to 0.5-3.5 kHz and modulated at a syllable rate (4 Hz): no voicing."""
    rng = np.random.default_rng(7)
    b, a = scipy.signal.butter(2, [500 / 8000, 3500 / 8000], btype="band")
    t = np.arange(int(seconds * SR)) / SR
    noise = scipy.signal.lfilter(b, a, rng.standard_normal(t.size)) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) ** 2
    return at_dbfs(noise, dbfs)


def assert_finite(s: dsp.AudioAnalytics) -> None:
    for key, value in s.to_dict().items():
        if isinstance(value, float):
            assert math.isfinite(value), key


@pytest.mark.parametrize("name", sorted(glob.glob(os.path.join(SPEECH_DIR, "*.wav"))))
def test_speech_fixtures_are_normal(name):
    s = summarise(load(os.path.basename(name)[:-4]))
    assert s.label == "normal", s
    assert_finite(s)
    assert -35.0 < s.mean_rms_dbfs < -10.0 and s.peak_rms_dbfs > s.mean_rms_dbfs
    assert 0.02 < s.mean_zcr < 0.3 and 0.3 < s.mean_spectral_entropy < 0.7


@pytest.mark.parametrize("name,syllables", sorted(SYLLABLES.items()))
def test_syllable_nuclei_track_the_transcripts(name, syllables):
    s = summarise(load(name))
    assert abs(s.syllables - syllables) <= max(2, 0.2 * syllables), (s.syllables, syllables)
    assert 1.5 < s.speech_rate_hz < 6.0


def test_whisper_like_signal_is_whisper():
    for dbfs in (-44.0, -38.0, -32.0):
        s = summarise(whisper_like(dbfs=dbfs))
        assert s.label == "whisper", (dbfs, s)
        assert_finite(s)


def test_loud_clipped_speech_is_anomalous():
    s = summarise(np.clip(load("librivox-0870") * 20.0, -1.0, 1.0))
    assert s.label == "anomalous" and s.clipped_ratio > 0.1
    assert s.peak_rms_dbfs > -6.0


def test_pure_noise_is_anomalous():
    rng = np.random.default_rng(3)
    s = summarise(at_dbfs(rng.standard_normal(3 * SR), -20.0))
    assert s.label == "anomalous"
    assert s.mean_spectral_entropy > 0.9 and s.mean_zcr > 0.4


def test_fast_loud_speech_is_excited():
    y = load("librivox-0870")
    fast = np.interp(np.arange(0, len(y), 1.5), np.arange(len(y)), y)  # 1.5x faster (and higher)
    s = summarise(at_dbfs(fast, -16.0))
    assert s.clipped_ratio < analytics.CLIP_RATIO
    assert s.label == "excited", s
    assert s.speech_rate_hz > analytics.EXCITED_RATE_HZ


@pytest.mark.parametrize("signal", ["silence", "dc", "tone"])
def test_silence_dc_and_a_pure_tone_are_anomalous(signal):
    t = np.arange(SR) / SR
    y = {"silence": np.zeros(SR), "dc": np.full(SR, 0.3), "tone": 0.3 * np.sin(2 * np.pi * 440 * t)}[signal]
    s = summarise(y.astype(np.float32))
    assert s.label == "anomalous"
    assert_finite(s)


def test_chunking_does_not_change_the_summary():
    y = load("cards-005")
    whole = summarise(y, chunk=None)
    for chunk in (160, 320, 777):
        assert _close(summarise(y, chunk=chunk), whole)


def _close(a: dsp.AudioAnalytics, b: dsp.AudioAnalytics) -> bool:
    da, db = a.to_dict(), b.to_dict()
    assert da.keys() == db.keys()
    for k in da:
        if isinstance(da[k], float):
            assert da[k] == pytest.approx(db[k], rel=1e-9, abs=1e-12), k
        else:
            assert da[k] == db[k], k
    return True


def test_no_audio_is_retained():
    y = load("librivox-0870")
    acc, stream = UtteranceAnalytics(), dsp.StreamingFeatures()
    sizes = []
    for i in range(0, len(y), 320):
        acc.add(stream.push(y[i:i + 320]))
        sizes.append(sum(getattr(acc, k).nbytes for k in acc.__slots__ if isinstance(getattr(acc, k), np.ndarray)))
    assert not hasattr(acc, "__dict__")
    assert max(sizes) <= 32 * 8 and sizes[0] == sizes[-1]  # a few sums and detector floats, constant
    for k in acc.__slots__:
        value = getattr(acc, k)
        assert not isinstance(value, (list, tuple, dict, bytes, dsp.FeatureFrames)), k


def test_summary_serialises_and_empty_summary_is_defined():
    s = summarise(load("goforward"))
    d = json.loads(json.dumps(s.to_dict()))
    assert set(d) == {f.name for f in s.__dataclass_fields__.values()}
    assert d["label"] in analytics.LABELS
    empty = UtteranceAnalytics().summary()
    assert empty.frames == 0 and empty.label == "anomalous"
    assert_finite(empty)


def test_classify_rules_in_order():
    base = {"active_frames": 100, "mean_rms_dbfs": -24.0, "mean_zcr": 0.1, "mean_spectral_entropy": 0.45,
                "clipped_ratio": 0.0, "speech_rate_hz": 4.0}
    assert classify(**base) == "normal"
    assert classify(**{**base, "active_frames": 0}) == "anomalous"
    assert classify(**{**base, "clipped_ratio": analytics.CLIP_RATIO}) == "anomalous"
    assert classify(**{**base, "mean_zcr": analytics.DC_ZCR / 2}) == "anomalous"
    assert classify(**{**base, "mean_spectral_entropy": 0.95}) == "anomalous"
    assert classify(**{**base, "mean_rms_dbfs": -40.0, "mean_spectral_entropy": 0.8}) == "whisper"
    assert classify(**{**base, "mean_rms_dbfs": -40.0, "mean_zcr": 0.3}) == "whisper"
    assert classify(**{**base, "mean_rms_dbfs": -40.0}) == "normal"  # quiet but voiced
    assert classify(**{**base, "mean_rms_dbfs": -15.0, "speech_rate_hz": 6.0}) == "excited"
    assert classify(**{**base, "mean_rms_dbfs": -15.0}) == "normal"  # loud but not fast
