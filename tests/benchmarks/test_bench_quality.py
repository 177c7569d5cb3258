"""benchmarks/bench_quality.py's scoring: character errors after Whisper's normaliser, DNSMOS at any input rate."""

from __future__ import annotations

import numpy as np

from benchmarks.bench_quality import char_errors, dnsmos
from dsp.resample import resample
from tests.helpers import speech


def test_char_errors_count_edits_after_the_normaliser():
    assert char_errors("ten of clubs", "10 of Clubs.") == (0, len("10 of clubs"))
    assert char_errors("go forward", "go forwards") == (1, len("go forward"))
    assert char_errors("go", "") == (2, 2)


def test_dnsmos_hears_speech_above_noise_whatever_the_rate():
    pcm, rate = speech("goforward.wav")
    at_16k = dnsmos(pcm, rate)
    at_24k = dnsmos(resample(pcm, rate, 24000), 24000)  # resampled to 16 kHz inside: about the same score
    noise = (np.random.default_rng(0).standard_normal(rate * 3) * 3000).astype(np.int16)
    assert abs(at_16k["ovrl_mos"] - at_24k["ovrl_mos"]) < 0.2
    assert at_16k["ovrl_mos"] > dnsmos(noise, rate)["ovrl_mos"] + 1.0
    assert all(1.0 <= v <= 5.0 for v in at_16k.values())
