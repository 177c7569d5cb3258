"""dsp/features.py: batch features against librosa (the reference) on real speech and synthetic edge cases.

Tolerances, and why:
- float64 audio: librosa computes the STFT, power and mel product in float64 too (with the same
  float32-valued mel basis), so only summation order differs: mel power to 1e-9 relative per
  element, dB to 1e-6, MFCC to 1e-6.
- float32 audio: librosa rounds the STFT to complex64 and sums the mel product in float32, we
  sum in float64 and round once, so elements differ by a few float32 ulps: 1e-5 relative per
  element (mel power), 1e-3 dB (log-mel), 1e-3 absolute (MFCC, whose c0 is ~-500).
- rms: librosa squares and averages in float32 by default (rtol 1e-6), exactly in float64 (1e-12).
- zcr: an exact count, so exact equality.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

import dsp
from tests.helpers import SPEECH as SPEECH_DIR

SPEECH = sorted(str(p) for p in SPEECH_DIR.glob("*.wav"))
SR = 16000

PARAMS = [
    {"n_fft": 512, "hop_length": 160, "n_mels": 40},
    {"n_fft": 1024, "hop_length": 256, "n_mels": 64, "fmin": 50.0, "fmax": 7000.0},
    {"n_fft": 2048, "hop_length": 512, "n_mels": 128, "center": False},
    {"n_fft": 512, "hop_length": 256, "n_mels": 64, "fmin": 20.0, "fmax": 4000.0, "center": False},
    {"n_fft": 1024, "hop_length": 160, "n_mels": 40, "htk": True},
]


def load(path: str, dtype=np.float32) -> np.ndarray:
    pcm, sr = sf.read(path, dtype="int16")
    assert sr == SR
    return (pcm.astype(np.float64) / 32768.0).astype(dtype)


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    assert len(SPEECH) >= 5, "speech fixtures missing"
    return [load(p) for p in SPEECH]


def assert_rel_close(ours, ref, rtol, floor_rel=1e-30):
    """Elementwise relative error, with an absolute floor relative to the array maximum."""
    assert ours.shape == ref.shape
    ours, ref = ours.astype(np.float64), ref.astype(np.float64)
    err = np.abs(ours - ref) / np.maximum(np.abs(ref), floor_rel * np.abs(ref).max() + 1e-300)
    assert err.max() <= rtol, f"max relative error {err.max():.3g} > {rtol:g}"


# ---- power to dB -------------------------------------------------------------------------------

def test_float32_power_to_db_is_within_2e_5_db_and_exact_at_the_floor():
    rng = np.random.default_rng(1)
    S = np.concatenate([10.0 ** rng.uniform(-14, 6, 50000), [0.0, 1e-10, 1e-11, 1.0]]).astype(np.float32)
    exact = 10.0 * np.log10(np.maximum(np.float32(1e-10), S).astype(np.float64))
    ours = dsp.power_to_db(S, top_db=None)
    assert ours.dtype == np.float32
    assert np.abs(ours - exact).max() < 2e-5
    assert np.all(ours[-4:-1] == -100.0) and ours[-1] == 0.0
    with_nan = S[:10].copy()
    with_nan[3] = np.nan
    out = dsp.power_to_db(with_nan, top_db=None)  # non-finite input takes the float64 path: NaN stays NaN
    assert np.isnan(out[3]) and np.array_equal(np.isnan(out), np.isnan(with_nan))


# ---- speech parity -------------------------------------------------------------------------------

@pytest.mark.parametrize("params", PARAMS, ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_melspectrogram_logmel_mfcc_match_librosa_on_speech(speech, params, dtype):
    exact = dtype == np.float64
    for y in speech:
        y = y.astype(dtype)
        ref = librosa.feature.melspectrogram(y=y, sr=SR, **params)
        ours = dsp.melspectrogram(y=y, sr=SR, **params)
        assert ours.dtype == ref.dtype
        assert_rel_close(ours, ref, 1e-9 if exact else 1e-5, floor_rel=1e-12)

        ref_db = librosa.power_to_db(ref, top_db=None)
        ours_db = dsp.power_to_db(ours, top_db=None)
        assert np.abs(ours_db - ref_db).max() <= (1e-6 if exact else 1e-3)

        ref_mfcc = librosa.feature.mfcc(S=ref_db, n_mfcc=13)
        ours_mfcc = dsp.mfcc(y=y, sr=SR, n_mfcc=13, top_db=None, **params)
        assert ours_mfcc.shape == ref_mfcc.shape
        assert np.abs(ours_mfcc - ref_mfcc).max() <= (1e-6 if exact else 1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mfcc_defaults_match_librosa_including_top_db_80(speech, dtype):
    y = speech[-1].astype(dtype)
    ref = librosa.feature.mfcc(y=y, sr=SR)
    ours = dsp.mfcc(y=y, sr=SR)
    assert ours.shape == ref.shape == (20, 1 + len(y) // 512)
    assert np.abs(ours - ref).max() <= (1e-6 if dtype == np.float64 else 1e-3)


def test_mfcc_lifter_and_mel_norm_none_match_librosa(speech):
    y = speech[0].astype(np.float64)
    kw = {"y": y, "sr": SR, "n_fft": 512, "hop_length": 160, "n_mels": 40, "n_mfcc": 13, "lifter": 22, "mel_norm": None}
    assert np.abs(dsp.mfcc(**kw) - librosa.feature.mfcc(**kw)).max() < 1e-6


def test_magnitude_melspectrogram_power_1_matches_librosa(speech):
    y = speech[1].astype(np.float64)
    kw = {"y": y, "sr": SR, "n_fft": 512, "hop_length": 160, "n_mels": 40, "power": 1.0}
    assert_rel_close(dsp.melspectrogram(**kw), librosa.feature.melspectrogram(**kw), 1e-9, floor_rel=1e-12)


def test_spectrogram_inputs_S_match_librosa(speech):
    y = speech[2].astype(np.float64)
    S = np.abs(librosa.stft(y, n_fft=512, hop_length=160)) ** 2
    assert_rel_close(dsp.melspectrogram(S=S, sr=SR, n_mels=40),
                     librosa.feature.melspectrogram(S=S, sr=SR, n_mels=40), 1e-9, floor_rel=1e-12)
    mag = np.sqrt(S)
    assert np.allclose(dsp.rms(S=mag, frame_length=512), librosa.feature.rms(S=mag, frame_length=512), rtol=1e-6)
    log_mel = librosa.power_to_db(librosa.feature.melspectrogram(S=S, sr=SR, n_mels=40))
    assert np.abs(dsp.mfcc(S=log_mel, n_mfcc=13) - librosa.feature.mfcc(S=log_mel, n_mfcc=13)).max() < 1e-3


def test_power_to_db_ref_amin_and_top_db_clamp_against_the_whole_input(speech):
    S = librosa.feature.melspectrogram(y=speech[0].astype(np.float64), sr=SR, n_fft=512, hop_length=160, n_mels=40)
    for kw in ({}, {"ref": np.max}, {"ref": np.max, "top_db": 40.0}, {"amin": 1e-5, "top_db": None}, {"ref": 2.0}):
        ours, ref = dsp.power_to_db(S, **kw), librosa.power_to_db(S, **kw)
        assert np.abs(ours - ref).max() < 1e-9, kw
    clamped = dsp.power_to_db(S, ref=np.max, top_db=40.0)
    assert clamped.max() == pytest.approx(0.0, abs=1e-9) and clamped.min() == pytest.approx(-40.0, abs=1e-9)
    with pytest.raises(ValueError):
        dsp.power_to_db(S, amin=0.0)
    with pytest.raises(ValueError):
        dsp.power_to_db(S, top_db=-1.0)


@pytest.mark.parametrize("frame_length,hop_length,center", [(512, 160, True), (2048, 512, True), (1024, 256, False)])
def test_rms_and_zcr_equal_librosa_definitions(speech, frame_length, hop_length, center):
    kw = {"frame_length": frame_length, "hop_length": hop_length, "center": center}
    for y in speech:
        ref = librosa.feature.rms(y=y, **kw)
        ours = dsp.rms(y=y, **kw)
        assert ours.dtype == ref.dtype == np.float32
        assert np.allclose(ours, ref, rtol=1e-6, atol=0)
        y64 = y.astype(np.float64)
        assert np.allclose(dsp.rms(y=y64, dtype=np.float64, **kw), librosa.feature.rms(y=y64, dtype=np.float64, **kw),
                           rtol=1e-12, atol=0)
        zref = librosa.feature.zero_crossing_rate(y, **kw)
        zours = dsp.zero_crossing_rate(y, **kw)
        assert zours.dtype == zref.dtype
        assert np.array_equal(zours, zref)


# ---- synthetic edge cases ----------------------------------------------------------------------

def _synthetic() -> dict[str, np.ndarray]:
    t = np.arange(SR) / SR
    speech = load(SPEECH[-1])
    rng = np.random.default_rng(1)
    return {
        "silence": np.zeros(SR, np.float32),
        "clipped": np.clip(speech * 20.0, -1.0, 1.0).astype(np.float32),
        "tone": (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32),
        "full_scale_square": np.sign(np.sin(2 * np.pi * 100.0 * t) + 1e-9).astype(np.float32),
        "noise": (0.1 * rng.standard_normal(SR)).astype(np.float32),
        "short": speech[5000:5300].copy(),
    }


@pytest.mark.filterwarnings("ignore:n_fft=512 is too large")  # librosa's note on the short input
@pytest.mark.parametrize("name", sorted(_synthetic()))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_synthetic_edge_cases_match_librosa(name, dtype):
    y = _synthetic()[name].astype(dtype)
    exact = dtype == np.float64
    kw = {"sr": SR, "n_fft": 512, "hop_length": 160, "n_mels": 40}
    ref = librosa.feature.melspectrogram(y=y, **kw)
    ours = dsp.melspectrogram(y=y, **kw)
    assert ours.shape == ref.shape
    assert_rel_close(ours, ref, 1e-9 if exact else 1e-5, floor_rel=1e-12)
    assert np.abs(dsp.power_to_db(ours, top_db=None) - librosa.power_to_db(ref, top_db=None)).max() <= 1e-3
    ref_mfcc = librosa.feature.mfcc(y=y, n_mfcc=13, **kw)
    assert np.abs(dsp.mfcc(y=y, n_mfcc=13, **kw) - ref_mfcc).max() <= 1e-3
    fk = {"frame_length": 512, "hop_length": 160}
    assert np.allclose(dsp.rms(y=y, **fk), librosa.feature.rms(y=y, **fk), rtol=1e-6, atol=0)
    assert np.array_equal(dsp.zero_crossing_rate(y, **fk), librosa.feature.zero_crossing_rate(y, **fk))
    if name == "silence":
        assert not ours.any() and np.all(dsp.power_to_db(ours, top_db=None) == -100.0)


def test_input_shorter_than_n_fft_centered_gives_frames_uncentered_raises():
    y = _synthetic()["short"]
    assert dsp.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=160).shape == (128, 2)
    with pytest.raises(ValueError, match="too short"):
        dsp.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=160, center=False)
    with pytest.raises(ValueError, match="too short"):
        dsp.rms(y=y, frame_length=512, hop_length=160, center=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_input_is_a_clear_error(bad, dtype):
    y = np.zeros(4000, dtype)
    y[1234] = bad
    for call in (lambda: dsp.melspectrogram(y=y, sr=SR), lambda: dsp.mfcc(y=y, sr=SR), lambda: dsp.rms(y=y),
                 lambda: dsp.zero_crossing_rate(y), lambda: dsp.spectral_entropy(y=y)):
        with pytest.raises(ValueError, match="NaN or inf.*1234"):
            call()


def test_unsupported_options_raise_instead_of_silently_differing():
    y = np.zeros(4000, np.float32)
    with pytest.raises(ValueError, match="power of two"):
        dsp.melspectrogram(y=y, sr=SR, n_fft=500)
    with pytest.raises(NotImplementedError):
        dsp.melspectrogram(y=y, sr=SR, window="hamming")
    with pytest.raises(NotImplementedError):
        dsp.mfcc(y=y, sr=SR, dct_type=3)
    with pytest.raises(ValueError, match="mono"):
        dsp.melspectrogram(y=np.zeros((2, 4000), np.float32), sr=SR)
    with pytest.raises(TypeError):
        dsp.rms(y=np.zeros(4000, np.int32))


def test_int16_input_is_scaled_by_1_over_32768():
    pcm = (np.sin(np.arange(5000) * 0.05) * 20000).astype(np.int16)
    as_float = pcm.astype(np.float32) / 32768.0
    assert np.array_equal(dsp.melspectrogram(y=pcm, sr=SR), dsp.melspectrogram(y=as_float, sr=SR))
    assert np.array_equal(dsp.rms(y=pcm), dsp.rms(y=as_float))


# ---- features librosa does not have: against a plain numpy statement of the definition --------

def _power_frames(y, n_fft, hop):
    frames = librosa.util.frame(np.pad(y.astype(np.float64), n_fft // 2), frame_length=n_fft, hop_length=hop)
    window = scipy.signal.get_window("hann", n_fft)
    return np.abs(np.fft.rfft(frames * window[:, None], axis=0)) ** 2, window


def test_spectral_entropy_follows_its_definition(speech):
    y = speech[3]
    P, _ = _power_frames(y, 512, 160)
    total = P.sum(axis=0)
    p = P / np.where(total > 0, total, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=0) / np.log(P.shape[0])
    ours = dsp.spectral_entropy(y=y.astype(np.float64), n_fft=512, hop_length=160)
    assert ours.shape == (1, P.shape[1])
    assert np.abs(ours[0] - np.where(total > 0, h, 0.0)).max() < 1e-6  # ln taken in float32


def test_spectral_entropy_separates_tone_noise_and_silence():
    s = _synthetic()
    kw = {"n_fft": 512, "hop_length": 160, "center": False}
    assert dsp.spectral_entropy(y=s["tone"], **kw).max() < 0.3
    assert abs(float(np.median(dsp.spectral_entropy(y=s["noise"], **kw))) - 0.924) < 0.02
    assert not dsp.spectral_entropy(y=s["silence"], **kw).any()


def test_energy_envelope_follows_its_definition(speech):
    y = speech[4]
    P, window = _power_frames(y, 512, 160)
    freqs = np.fft.rfftfreq(512, 1.0 / SR)
    band = (freqs >= 300.0) & (freqs <= 3400.0)
    ms = 2.0 * P[band].sum(axis=0) / (512 * np.sum(window**2))
    ref = 10 * np.log10(np.maximum(ms, 1e-10))
    ours = dsp.energy_envelope(y=y.astype(np.float64), sr=SR, n_fft=512, hop_length=160)
    assert np.abs(ours[0] - ref).max() < 1e-9


def test_energy_envelope_reads_minus_3_dbfs_for_a_full_scale_sine_in_band():
    t = np.arange(SR) / SR
    env = dsp.energy_envelope(y=np.sin(2 * np.pi * 1000.0 * t), sr=SR, n_fft=512, hop_length=160, center=False)
    assert np.allclose(env, -3.01, atol=0.05)
    low = dsp.energy_envelope(y=np.sin(2 * np.pi * 60.0 * t), sr=SR, n_fft=512, hop_length=160, center=False)
    assert low.max() < -40.0  # mains hum is outside the band

