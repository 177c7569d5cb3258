"""dsp/denoise.py: RNNoise around the 16 kHz pipeline really removes noise, keeps speech, and streams."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dsp.denoise import FRAME, MUTE, RAMP, Denoiser

SPEECH = Path(__file__).resolve().parents[2] / "fixtures" / "audio" / "speech"


def _speech(name: str = "librivox-0870.wav", seconds: float = 6.0) -> np.ndarray:
    pcm, rate = sf.read(SPEECH / name, dtype="int16")
    assert rate == 16000
    return pcm[: int(seconds * rate)]


def _stream(d: Denoiser, pcm: np.ndarray, chunk: int = 320) -> np.ndarray:
    return np.concatenate([d.process(pcm[i:i + chunk]) for i in range(0, len(pcm), chunk)])


def _noise(n: int, rms: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, rms, n)


def test_stationary_noise_alone_is_suppressed_by_over_20_db():
    noise = _noise(16000 * 3, 2000).astype(np.int16)
    out = _stream(Denoiser(), noise).astype(np.float64)
    settled = out[8000:]  # the network adapts to the noise floor within the first half second
    reduction_db = 10 * np.log10(np.mean(noise.astype(np.float64) ** 2) / np.mean(settled ** 2))
    assert reduction_db > 20


def test_a_stream_that_starts_in_loud_noise_fades_in_instead_of_letting_the_first_frames_through():
    """A new network has no noise estimate yet: unfaded, its first 60 ms of loud noise came out at RMS 200-320,
    which VAD took for the start of speech."""
    noise = _noise(16000, 2500, seed=11).astype(np.int16)
    out = _stream(Denoiser(), noise).astype(np.float64)
    rms = [np.sqrt(np.mean(out[i:i + 320] ** 2)) for i in range(0, len(out), 320)]
    assert max(rms) < 60
    assert not out[:MUTE].any()


@pytest.mark.parametrize("name", ["librivox-0870.wav", "cards-002.wav"])
def test_noisy_speech_comes_out_closer_to_the_clean_speech(name):
    clean = _speech(name).astype(np.float64)
    noise = _noise(len(clean), 1.0, seed=3)
    noise *= np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2) / 10 ** (5 / 10))  # 5 dB SNR
    noisy = np.clip(clean + noise, -32768, 32767).astype(np.int16)
    d = Denoiser()
    out = _stream(d, noisy).astype(np.float64)
    ref, got = clean[:len(out) - d.delay], out[d.delay:]
    snr_out = 10 * np.log10(np.sum(ref ** 2) / np.sum((got - ref) ** 2))
    assert snr_out > 5 + 2  # at least 2 dB better than what went in
    assert np.std(got) > 0.5 * np.std(ref)  # the speech itself is kept, not muted with the noise


def test_output_keeps_pace_with_input_and_any_chunking_gives_the_same_signal():
    pcm = _speech(seconds=2.0)
    whole = _stream(Denoiser(), pcm, chunk=320)
    assert len(whole) == len(pcm) // FRAME * FRAME  # every whole 10 ms comes out in the call it arrived in
    d = Denoiser()
    assert len(d.process(pcm[:320])) == 320  # a 20 ms append: 20 ms out at once
    odd = _stream(Denoiser(), pcm, chunk=237)  # 14.8 ms chunks: tails carried to the next call
    n = min(len(odd), len(whole))
    assert n > len(pcm) - 2 * FRAME
    assert np.array_equal(odd[:n], whole[:n])


def test_strength_zero_is_the_input_delayed_and_half_strength_lies_between():
    pcm = _speech(seconds=1.0)
    d = Denoiser(strength=0.0)
    out = _stream(d, pcm)
    settled = MUTE + RAMP  # after the fade-in
    assert np.array_equal(out[settled:], pcm[settled - d.delay:len(out) - d.delay])
    noise = _noise(16000, 2000, seed=5).astype(np.int16)
    full = np.std(_stream(Denoiser(1.0), noise)[8000:].astype(np.float64))
    half = np.std(_stream(Denoiser(0.5), noise)[8000:].astype(np.float64))
    assert full < half < np.std(noise.astype(np.float64))


def test_each_stream_has_its_own_state_and_a_closed_one_refuses_work():
    pcm = _speech(seconds=1.0)
    noise = _noise(len(pcm), 3000).astype(np.int16)
    a, b = Denoiser(), Denoiser()
    interleaved = []
    for i in range(0, len(pcm), 320):  # two sessions' chunks alternating, as on the event loop
        interleaved.append(a.process(pcm[i:i + 320]))
        b.process(noise[i:i + 320])
    assert np.array_equal(np.concatenate(interleaved), _stream(Denoiser(), pcm))
    a.close()
    a.close()  # idempotent
    with pytest.raises(RuntimeError):
        a.process(pcm[:320])
