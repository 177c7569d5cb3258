"""dsp/filters.py: the tables the kernels use (Hann window, mel basis, FFT plans) against scipy, librosa and numpy."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal

from dsp import filters


@pytest.mark.parametrize("n", [4, 400, 512, 1024, 2048])
def test_hann_window_matches_scipy_periodic_hann(n):
    assert np.array_equal(filters.hann_window(n, n), scipy.signal.get_window("hann", n))


def test_hann_window_shorter_than_n_fft_is_centred_like_librosa():
    ref = librosa.util.pad_center(scipy.signal.get_window("hann", 400), size=512)
    assert np.array_equal(filters.hann_window(400, 512), ref)


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax,htk,norm,dtype", [
    (16000, 512, 40, 0.0, None, False, "slaney", np.float32),
    (16000, 1024, 64, 50.0, 7000.0, False, "slaney", np.float32),
    (22050, 2048, 128, 0.0, None, False, "slaney", np.float32),
    (16000, 512, 40, 20.0, 4000.0, True, "slaney", np.float32),
    (16000, 512, 40, 0.0, None, False, None, np.float32),
    (44100, 2048, 96, 30.0, 16000.0, False, "slaney", np.float64),
])
def test_mel_basis_matches_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype):
    """float32 (librosa's default) is bit for bit; in float64 numba's and numpy's log/exp may
    differ by an ulp in the band edges, which moves edge weights by ~1e-15 of the largest."""
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=dtype)
    ours = filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=dtype)
    assert ours.dtype == ref.dtype
    if dtype == np.float32:
        assert np.array_equal(ours, ref)
    else:
        assert np.abs(ours - ref).max() <= 1e-13 * ref.max()


def test_mel_basis_is_built_once_per_configuration():
    a = filters.mel_plan(16000.0, 512, 40, 0.0, None, False, "slaney", np.float32)
    b = filters.mel_plan(16000.0, 512, 40, 0.0, None, False, "slaney", np.float32)
    assert a is b
    assert not a.basis.flags.writeable
    fresh = filters.mel(sr=16000, n_fft=512, n_mels=40)
    fresh[0, 0] = 123.0  # the public copy is the caller's to modify
    assert filters.mel_plan(16000.0, 512, 40, 0.0, None, False, "slaney", np.float32).basis[0, 0] != 123.0
