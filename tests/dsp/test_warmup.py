"""dsp/warmup.py: compiling (or loading) the kernels ahead of the first call."""

from __future__ import annotations

import numpy as np

import dsp
from dsp.polyphase import PolyphaseResampler, _polyphase


def test_warmup_returns_seconds():
    assert 0.0 <= dsp.warmup() < 600.0


def test_warmup_leaves_nothing_to_compile_for_a_live_audio_append():
    """A session's first append must not compile on the event loop (seconds on a fresh machine): the resampler's
    kernel already has the specialisations for audio/pcm payloads, read-only `np.frombuffer` arrays, and for
    writable int16 (the other formats' decoders)."""
    dsp.warmup()
    known = list(_polyphase.signatures)
    for rate in (8000, 24000, 48000):
        PolyphaseResampler(rate, 16000).process(np.frombuffer(bytes(960), dtype="<i2"))
        PolyphaseResampler(rate, 16000).process(np.zeros(480, np.int16))
    assert list(_polyphase.signatures) == known
