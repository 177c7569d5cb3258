"""dsp/polyphase.py: the input resampler: steady output per chunk (no block delay), the same samples however the
input is cut, the passband kept and what would alias suppressed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.polyphase import PolyphaseResampler


def _tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


@pytest.mark.parametrize("rate", [8000, 24000, 44100, 48000])
def test_every_chunk_gives_its_share_at_once(rate):
    r = PolyphaseResampler(rate, 16000)
    chunk = rate // 50  # 20 ms
    x = _tone(440, rate)
    lens = [len(r.process(x[i:i + chunk])) for i in range(0, len(x), chunk)]
    assert all(abs(n - 320) <= 1 for n in lens[1:])  # soxr HQ gives 0, 490, 0, 489 ... here
    assert abs(sum(lens) - len(x) * 16000 / rate) <= 1
    assert r.delay_ms < 2.5


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 2000), min_size=1, max_size=30))
def test_chunking_does_not_change_the_output(cuts):
    x = _tone(1000, 24000, 0.5) + _tone(3100, 24000, 0.5, 2000)
    whole = PolyphaseResampler(24000, 16000).process(x)
    r, parts, at = PolyphaseResampler(24000, 16000), [], 0
    for n in cuts:
        parts.append(r.process(x[at:at + n]))
        at += n
    parts.append(r.process(x[at:]))
    assert np.array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("rate", [24000, 48000])
def test_passband_kept_and_aliases_suppressed(rate):
    y = PolyphaseResampler(rate, 16000).process(_tone(1000, rate))[400:]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    assert abs(freqs[np.argmax(spectrum)] - 1000) < 10
    rms = np.sqrt(np.mean(y.astype(float) ** 2))
    assert rms == pytest.approx(8000 / np.sqrt(2), rel=0.02)
    alias = PolyphaseResampler(rate, 16000).process(_tone(10000, rate))[400:]  # above 8 kHz: must not fold
    assert 20 * np.log10(np.sqrt(np.mean(alias.astype(float) ** 2)) / rms) < -55


def test_same_rate_passes_through_and_full_scale_clips_cleanly():
    x = _tone(500, 16000)
    assert np.array_equal(PolyphaseResampler(16000, 16000).process(x), x)
    loud = np.tile(np.array([32767, -32768], np.int16), 2400)
    y = PolyphaseResampler(48000, 16000).process(loud)
    assert y.dtype == np.int16 and len(y) == 1600
