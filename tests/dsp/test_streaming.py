"""dsp/streaming.py: StreamingFeatures: any chunking gives bit for bit the batch API's frames (center=False,
top_db=None)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

import dsp
from tests.helpers import SPEECH as SPEECH_DIR

SPEECH = sorted(str(p) for p in SPEECH_DIR.glob("*.wav"))
SR = 16000

CONFIGS = [
    {"n_fft": 512, "hop_length": 160, "n_mels": 40, "n_mfcc": 13},
    {"n_fft": 1024, "hop_length": 256, "n_mels": 64, "n_mfcc": 20, "fmin": 50.0, "fmax": 7000.0},
    {"n_fft": 2048, "hop_length": 512, "n_mels": 128, "n_mfcc": 13},
    {"n_fft": 256, "hop_length": 400, "n_mels": 24, "n_mfcc": 12},  # hop > n_fft: samples between frames are skipped
]


def pcm16(path: str) -> np.ndarray:
    pcm, sr = sf.read(path, dtype="int16")
    assert sr == SR
    return pcm


@pytest.fixture(scope="module")
def speech16() -> np.ndarray:
    return pcm16(SPEECH[-1])


def push_all(stream: dsp.StreamingFeatures, y: np.ndarray, sizes: list[int]) -> list[dsp.FeatureFrames]:
    out, i = [], 0
    for n in sizes:
        out.append(stream.push(y[i:i + n]))
        i += n
    out.append(stream.push(y[i:]))
    return out


def joined(parts: list[dsp.FeatureFrames]) -> np.ndarray:
    return np.concatenate([p.data for p in parts], axis=1)


def batch_reference(y, c: dict) -> dict[str, np.ndarray]:
    """Every streamed feature from the librosa-style batch API on the whole signal."""
    mel_kw = {"sr": SR, "n_fft": c["n_fft"], "hop_length": c["hop_length"], "n_mels": c["n_mels"], "center": False,
                  "fmin": c.get("fmin", 0.0), "fmax": c.get("fmax")}
    frame_kw = {"frame_length": c["n_fft"], "hop_length": c["hop_length"], "center": False}
    spec_kw = {"n_fft": c["n_fft"], "hop_length": c["hop_length"], "center": False}
    return {
        "log_mel": dsp.power_to_db(dsp.melspectrogram(y=y, **mel_kw), top_db=None),
        "mfcc": dsp.mfcc(y=y, n_mfcc=c["n_mfcc"], top_db=None, **mel_kw),
        "rms": dsp.rms(y=y, **frame_kw),
        "zcr": dsp.zero_crossing_rate(y, **frame_kw).astype(np.float32),
        "spectral_entropy": dsp.spectral_entropy(y=y, **spec_kw),
        "energy_envelope": dsp.energy_envelope(y=y, sr=SR, **spec_kw),
    }


@pytest.mark.parametrize("c", CONFIGS, ids=lambda c: f"{c['n_fft']}-{c['hop_length']}-{c['n_mels']}")
def test_stream_equals_batch_api_bit_for_bit(speech16, c):
    y = speech16[:3 * SR]
    stream = dsp.StreamingFeatures(sr=SR, **c)
    frames = push_all(stream, y, [320] * 40 + [1, 7, 999, 0, 4096])
    ref = batch_reference(y, c)
    total = frames[0].data.shape[0]
    got = dsp.FeatureFrames(joined(frames), stream.config)
    assert got.data.shape == (total, ref["rms"].shape[1])
    for name, want in ref.items():
        assert getattr(got, name).dtype == np.float32
        assert np.array_equal(getattr(got, name), want), name
    clipped = dsp.feature_frames(y, sr=SR, **c).clipped
    assert np.array_equal(got.clipped, clipped)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=1500), max_size=60),
       which=st.integers(min_value=0, max_value=len(SPEECH) - 1),
       kind=st.sampled_from(["int16", "float32", "float64", "bytes"]))
def test_random_chunkings_equal_batch(sizes, which, kind):
    y16 = pcm16(SPEECH[which])
    y = {"int16": y16, "float32": y16.astype(np.float32) / 32768, "float64": y16 / 32768.0, "bytes": y16}[kind]
    stream = dsp.StreamingFeatures()
    if kind == "bytes":
        parts, i = [], 0
        for n in sizes:
            parts.append(stream.push(y16[i:i + n].tobytes()))
            i += n
        parts.append(stream.push(y16[i:].tobytes()))
    else:
        parts = push_all(stream, y, sizes)
    batch = dsp.feature_frames(y16)
    assert np.array_equal(joined(parts), batch.data)
    assert sum(p.n_frames for p in parts) == 1 + (len(y16) - 512) // 160


def test_feature_frames_equals_the_librosa_style_functions(speech16):
    c = CONFIGS[0]
    batch = dsp.feature_frames(speech16, sr=SR, **c)
    for name, want in batch_reference(speech16, c).items():
        assert np.array_equal(getattr(batch, name), want), name


def test_frames_are_emitted_exactly_when_complete():
    stream = dsp.StreamingFeatures()
    first = stream.push(np.zeros(511, np.int16))
    assert first.n_frames == 0
    assert first.log_mel.shape == (40, 0) and first.mfcc.shape == (13, 0) and first.rms.shape == (1, 0)
    assert first.zcr.shape == first.spectral_entropy.shape == first.energy_envelope.shape == (1, 0)
    assert stream.push(np.zeros(1, np.int16)).n_frames == 1
    assert stream.push(np.zeros(159, np.int16)).n_frames == 0
    assert stream.push(np.zeros(1 + 160 * 3, np.int16)).n_frames == 4


def test_int16_float32_float64_and_bytes_give_the_same_frames(speech16):
    y = speech16[:SR]
    ref = dsp.StreamingFeatures().push(y).data
    assert np.array_equal(dsp.StreamingFeatures().push(y.astype(np.float32) / 32768).data, ref)
    assert np.array_equal(dsp.StreamingFeatures().push(y / 32768.0).data, ref)
    assert np.array_equal(dsp.StreamingFeatures().push(y.tobytes()).data, ref)
    assert np.array_equal(dsp.StreamingFeatures().push(y[::-1][::-1]).data, ref)  # non-contiguous view is fine


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_push_raises_and_leaves_the_stream_unchanged(speech16, bad):
    y = speech16[:4000].astype(np.float32) / 32768
    stream = dsp.StreamingFeatures()
    a = stream.push(y[:1000])
    poisoned = y[1000:2000].copy()
    poisoned[500] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        stream.push(poisoned)
    b = stream.push(y[1000:])
    assert np.array_equal(np.concatenate([a.data, b.data], axis=1), dsp.feature_frames(y).data)


def test_bad_types_and_shapes_are_rejected():
    stream = dsp.StreamingFeatures()
    with pytest.raises(TypeError):
        stream.push(np.zeros(100, np.int32))
    with pytest.raises(ValueError, match="mono"):
        stream.push(np.zeros((2, 100), np.int16))


def test_frames_are_immutable(speech16):
    frames = dsp.StreamingFeatures().push(speech16[:2000])
    with pytest.raises(dataclasses.FrozenInstanceError):
        frames.data = None
    with pytest.raises(ValueError):
        frames.log_mel[0, 0] = 1.0
    assert np.shares_memory(frames.mfcc, frames.data)  # views, not copies


def test_frames_handed_out_survive_new_rooms(speech16):
    """Pushes that outgrow the output room (one of more than ROOM_FRAMES frames, then many small ones)
    leave every block handed out earlier as it was."""
    from dsp.streaming import ROOM_FRAMES

    stream = dsp.StreamingFeatures()
    big = stream.push(speech16[:512 + 160 * (ROOM_FRAMES + 8)])
    assert big.n_frames == ROOM_FRAMES + 9
    kept = [(big, big.data.copy())]
    i = 512 + 160 * (ROOM_FRAMES + 8)
    for _ in range(3 * ROOM_FRAMES):
        part = stream.push(speech16[i:i + 320])
        kept.append((part, part.data.copy()))
        i += 320
    assert all(np.array_equal(frames.data, copy) for frames, copy in kept)
    assert np.array_equal(joined([f for f, _ in kept]), dsp.feature_frames(speech16[:i]).data)


def test_reset_starts_over(speech16):
    stream = dsp.StreamingFeatures()
    first = stream.push(speech16[:5000]).data
    stream.push(speech16[5000:9000])
    stream.reset()
    assert np.array_equal(stream.push(speech16[:5000]).data, first)


@pytest.mark.parametrize("n_fft", [256, 512, 1024, 2048])
def test_state_is_order_n_fft_and_tables_are_shared(n_fft):
    a = dsp.StreamingFeatures(n_fft=n_fft, n_mels=40, n_mfcc=13)
    b = dsp.StreamingFeatures(n_fft=n_fft, n_mels=40, n_mfcc=13)
    assert a.state_nbytes <= 8 * (5 * n_fft + 2 * 40 + 13 + 8)  # samples + FFT scratch, float64
    assert a._plan is b._plan
    a.push(np.ones(10 * n_fft, np.int16))
    assert a.state_nbytes == b.state_nbytes  # nothing grows with the audio pushed


def test_streaming_log_mel_and_mfcc_match_librosa_with_top_db_none(speech16):
    import librosa

    y = speech16.astype(np.float32) / 32768
    frames = dsp.feature_frames(y)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=160, n_mels=40,
                                                             center=False), top_db=None)
    assert np.abs(frames.log_mel - ref).max() < 1e-3
    assert np.abs(frames.mfcc - librosa.feature.mfcc(S=ref, n_mfcc=13)).max() < 1e-3

