"""voice/client.py: the audio files the replay client reads, and the ones it refuses with a reason."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from voice.client import AudioFileError, load_audio


def test_a_float_file_with_nan_or_infinity_is_refused(tmp_path):
    samples = np.zeros(16000, np.float32)
    samples[100], samples[200], samples[300] = np.nan, np.inf, -np.inf
    sf.write(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="3 of its 16000 float samples are NaN or infinite"):
        load_audio(tmp_path / "nan.wav")


def test_a_clean_float_file_is_scaled_and_clipped_to_int16(tmp_path):
    samples = np.array([0.0, 0.5, -0.5, 1.5, -2.0] * 100, np.float32)
    sf.write(tmp_path / "ok.wav", samples, 16000, subtype="DOUBLE")
    pcm, rate = load_audio(tmp_path / "ok.wav")
    assert rate == 16000 and pcm.dtype == np.int16
    assert pcm[:5].tolist() == [0, 16383, -16383, 32767, -32767]
