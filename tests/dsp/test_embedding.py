"""dsp/embedding.py: one utterance's vector; the same phrase again lands near, other phrases far."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dsp import OpusDecoder, OpusEncoder, StreamingFeatures, resample
from dsp.embedding import DIM, UtteranceEmbedding

SPEECH = Path(__file__).resolve().parents[2] / "fixtures" / "audio" / "speech"
NAMES = sorted(p.stem for p in SPEECH.glob("*.wav"))


def _pcm(name: str) -> np.ndarray:
    pcm, rate = sf.read(SPEECH / f"{name}.wav", dtype="int16")
    assert rate == 16000
    return pcm


def _vector(pcm: np.ndarray, chunk: int = 320) -> np.ndarray:
    features, emb = StreamingFeatures(), UtteranceEmbedding()
    for i in range(0, len(pcm), chunk):
        emb.add(features.push(pcm[i:i + chunk]))
    return emb.vector()


def _again(pcm: np.ndarray, seed: int) -> np.ndarray:
    """The recording played again: at half the gain, in a little noise (about 30 dB SNR), through the Opus path."""
    noisy = pcm.astype(np.float64) * 0.5 + np.random.default_rng(seed).normal(0, 30, len(pcm))
    up = resample(np.clip(noisy, -32768, 32767).astype(np.int16), 16000, 48000)
    enc, dec = OpusEncoder(), OpusDecoder()
    packets = enc.encode(up) + enc.flush()
    return resample(np.concatenate([dec.decode(p) for p in packets]), 48000, 16000)


@pytest.fixture(scope="module")
def library() -> dict[str, np.ndarray]:
    return {name: _vector(_pcm(name)) for name in NAMES}


def test_the_vector_has_a_fixed_size_and_unit_norm_whatever_the_length(library):
    for vec in library.values():
        assert vec.shape == (DIM,) and vec.dtype == np.float32
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    assert _vector(np.zeros(16000, np.int16)) is None  # silence: no active frame, no vector


def test_a_recording_played_again_finds_itself_first(library):
    for seed, name in enumerate(NAMES):
        query = _vector(_again(_pcm(name), seed))
        ranked = sorted(NAMES, key=lambda other: -float(query @ library[other]))
        assert ranked[0] == name, (name, ranked[:3])


def test_similar_phrases_are_nearer_than_unrelated_ones(library):
    """ "ten of clubs" and "seven of clubs" (one speaker, one pattern) against a sentence from a novel."""
    near = float(library["cards-001"] @ library["cards-003"])
    far = float(library["cards-001"] @ library["librivox-0870"])
    assert near > far + 0.1


def test_chunking_and_silence_padding_change_nothing(library):
    pcm = _pcm("goforward")
    padded = np.concatenate([np.zeros(8000, np.int16), pcm, np.zeros(8000, np.int16)])
    assert float(_vector(pcm, chunk=1234) @ library["goforward"]) > 0.999
    assert float(_vector(padded) @ library["goforward"]) > 0.95  # pauses are not active frames
