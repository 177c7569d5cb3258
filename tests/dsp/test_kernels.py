"""dsp/kernels.py: the numba kernels on their own (the power spectrum at every FFT size, float32 log,
peak counting across calls)."""

from __future__ import annotations

import numpy as np
import pytest

from dsp import filters, kernels


def test_vectorised_float32_log_is_within_a_few_ulp_of_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate([10.0 ** rng.uniform(-37, 37, 20000), rng.uniform(0.5, 2.0, 20000), [1.0, 2.0, 0.5]])
    x = x.astype(np.float32)
    out = x.copy()
    kernels.ln32_into(out, np.empty_like(x))
    ref = np.log(x.astype(np.float64))
    assert np.max(np.abs(out - ref) / np.maximum(np.abs(ref), 1.0)) < 4e-7  # ~3 float32 ulp
    assert out[-3] == 0.0


def test_count_peaks_state_carries_across_calls():
    rng = np.random.default_rng(0)
    env = np.cumsum(rng.standard_normal(2000)) - 40.0
    whole = kernels.count_peaks(env, kernels.peak_state(6), 4.0, 4.0, -45.0)
    state, parts = kernels.peak_state(6), 0
    for chunk in np.array_split(env, 37):
        parts += kernels.count_peaks(np.ascontiguousarray(chunk), state, 4.0, 4.0, -45.0)
    assert whole == parts > 0


@pytest.mark.parametrize("n_fft", [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
def test_power_spectrum_kernel_matches_numpy_rfft_at_every_size(n_fft):
    """Radix-4 and radix-8 stages, the radix-4 and radix-2 tails and the spelled-out default sizes."""
    sp = filters.spectrum_plan(n_fft)
    frame = np.random.default_rng(n_fft).standard_normal(n_fft)
    m = n_fft // 2
    power = np.empty(m + 1)
    kernels.power_frame(frame, *sp, np.empty(kernels.fft_scratch_size(n_fft)), power)
    ref = np.abs(np.fft.rfft(frame * sp.window)) ** 2
    assert np.abs(power - ref).max() <= 1e-12 * ref.max()
