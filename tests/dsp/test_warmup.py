"""dsp/warmup.py: compiling (or loading) the kernels ahead of the first call."""

from __future__ import annotations

import dsp


def test_warmup_returns_seconds():
    assert 0.0 <= dsp.warmup() < 600.0

