"""dsp/g711.py: mu-law and A-law round trips."""

from __future__ import annotations

import numpy as np

from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode


def test_g711_round_trip_is_within_quantisation():
    x = (np.sin(np.arange(8000) / 7.0) * 20000).astype(np.int16)
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        y = dec(enc(x)).astype(np.int32)
        assert np.max(np.abs(y - x)) <= 0.035 * 20000  # logarithmic steps: ~3 % of the amplitude at most
        assert np.corrcoef(x, y)[0, 1] > 0.999

