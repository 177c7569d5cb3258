"""dsp/opus.py: the Opus decoder refuses what is not a packet."""

from __future__ import annotations

import pytest

from dsp import OpusDecoder


def test_opus_decoder_rejects_garbage():
    with pytest.raises(ValueError):
        OpusDecoder().decode(b"")

