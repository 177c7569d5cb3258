"""Constant tables per configuration (Hann window, FFT twiddles, Slaney mel basis, DCT-II).

They are built by numba kernels that reproduce scipy's / librosa's arithmetic step by step,
so the mel basis matches `librosa.filters.mel` to the float32 bit, and each table is
built once per configuration and kept by `functools.lru_cache` (no module-level dicts).
The returned arrays are read-only because they are shared by every caller.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from numba import njit

from dsp import kernels

_F_SP = 200.0 / 3  # Slaney mel scale: linear part, Hz per mel
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP


@njit(cache=True)
def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window (scipy `get_window('hann', win_length)`), zero-padded centred to n_fft."""
    out = np.zeros(n_fft)
    lpad = (n_fft - win_length) // 2
    if win_length == 1:
        out[lpad] = 1.0
        return out
    m = win_length + 1  # periodic window = symmetric window of length n+1 with the last sample dropped
    step = (math.pi - -math.pi) / (m - 1)
    for k in range(win_length):
        fac = k * step + -math.pi
        out[lpad + k] = 0.0 + 0.5 * 1.0 + 0.5 * math.cos(fac)
    return out


@njit(cache=True)
def fft_radices(m: int) -> list:
    """Radix of each stage of the m-point complex FFT (m a power of two): 4 first (its stride-1
    stage vectorises with interleaved stores), then kernels.stage_radix, as power_frame runs them."""
    if m == 2:
        return [2]
    radices = [4]
    n = m // 4
    while n > 1:
        r = kernels.stage_radix(n)
        radices.append(r)
        n //= r
    return radices


@njit(cache=True)
def fft_tables(n_fft: int):
    """Tables for a length-n_fft real FFT done as an m = n_fft/2-point complex FFT.

    The complex FFT is a self-sorting (Stockham) decimation in frequency with the radices of
    `fft_radices`: no bit reversal, and every stage but the first reads and writes runs of
    contiguous samples, so its loops vectorise.
    Returns (tw_re, tw_im, post_re, post_im): for each stage of radix r and length n (n = m,
    m/r1, ...) the twiddles w^(kp) for k = 1..r-1, p < n/r (w = exp(-2*pi*i/n)), flat in stage
    order, k-major; and the real-FFT split twiddles exp(-2*pi*i*k/n_fft), k = 0..m.
    """
    m = n_fft // 2
    radices = fft_radices(m)
    size = 0
    n = m
    for r in radices:
        size += (r - 1) * (n // r)
        n //= r
    tw_re = np.empty(size)
    tw_im = np.empty(size)
    o = 0
    n = m
    for r in radices:
        q = n // r
        for k in range(1, r):
            for p in range(q):
                ang = -2.0 * math.pi * k * p / n
                tw_re[o + (k - 1) * q + p] = math.cos(ang)
                tw_im[o + (k - 1) * q + p] = math.sin(ang)
        o += (r - 1) * q
        n //= r
    post_re = np.empty(m + 1)
    post_im = np.empty(m + 1)
    for k in range(m + 1):
        ang = -2.0 * math.pi * k / n_fft
        post_re[k] = math.cos(ang)
        post_im[k] = math.sin(ang)
    return tw_re, tw_im, post_re, post_im


@njit(cache=True)
def _hz_to_mel(f: float, htk: bool) -> float:
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    mel = (f - 0.0) / _F_SP
    if f >= _MIN_LOG_HZ:
        mel = _MIN_LOG_MEL + np.log(f / _MIN_LOG_HZ) / (np.log(6.4) / 27.0)
    return mel


@njit(cache=True)
def _mel_to_hz(mel: float, htk: bool) -> float:
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    hz = 0.0 + _F_SP * mel
    if mel >= _MIN_LOG_MEL:
        hz = _MIN_LOG_HZ * np.exp(np.log(6.4) / 27.0 * (mel - _MIN_LOG_MEL))
    return hz


@njit(cache=True)
def mel_filterbank(
    sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, slaney: bool, f32: bool
) -> np.ndarray:
    """Triangular mel filters (n_mels x n_fft//2+1), the arithmetic of `librosa.filters.mel`.

    `slaney` divides each triangle by its band width (norm="slaney"); `f32` rounds like
    librosa's default dtype=float32 (first the triangle, then the normalised weight).
    """
    n_bins = 1 + n_fft // 2
    val = 1.0 / (n_fft * (1.0 / sr))  # numpy.fft.rfftfreq
    fftfreqs = np.arange(n_bins) * val
    n_pts = n_mels + 2
    lo = _hz_to_mel(fmin, htk)
    hi = _hz_to_mel(fmax, htk)
    mel_f = np.empty(n_pts)
    step = (hi - lo) / (n_pts - 1)  # numpy.linspace
    for i in range(n_pts):
        mel_f[i] = _mel_to_hz(i * step + lo if i < n_pts - 1 else hi, htk)
    weights = np.zeros((n_mels, n_bins))
    for i in range(n_mels):
        d_lo = mel_f[i + 1] - mel_f[i]
        d_hi = mel_f[i + 2] - mel_f[i + 1]
        enorm = 2.0 / (mel_f[i + 2] - mel_f[i])
        for k in range(n_bins):
            lower = -(mel_f[i] - fftfreqs[k]) / d_lo
            upper = (mel_f[i + 2] - fftfreqs[k]) / d_hi
            w = max(0.0, min(lower, upper))
            if f32:
                w = np.float64(np.float32(w))
            if slaney:
                w = w * enorm
                if f32:
                    w = np.float64(np.float32(w))
            weights[i, k] = w
    return weights


@njit(cache=True)
def dct_ortho_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Rows 0..n_out-1 of the orthonormal DCT-II matrix (scipy `dct(type=2, norm='ortho')`)."""
    d = np.empty((n_out, n_in))
    for k in range(n_out):
        scale = math.sqrt(1.0 / n_in) if k == 0 else math.sqrt(2.0 / n_in)
        for n in range(n_in):
            d[k, n] = scale * math.cos(math.pi * k * (2 * n + 1) / (2.0 * n_in))
    return d


def _readonly(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


class SpectrumPlan(NamedTuple):
    """Everything the framed power spectrum of one (n_fft, win_length) needs."""

    window: np.ndarray
    tw_re: np.ndarray
    tw_im: np.ndarray
    post_re: np.ndarray
    post_im: np.ndarray


class MelPlan(NamedTuple):
    """Mel basis, dense (for users) and by bin (for kernels).

    Triangles overlap only their neighbours, so every bin has at most two non-zero weights,
    in adjacent bands: w1[k] for band b and w2[k] for band b+1, where the bins whose first
    band is b are seg[b]..seg[b+1]-1. One pass over the bins then gives every band."""

    basis: np.ndarray
    seg: np.ndarray
    w1: np.ndarray
    w2: np.ndarray


def _check_n_fft(n_fft: int) -> None:
    if n_fft < 4 or n_fft & (n_fft - 1):
        raise ValueError(f"n_fft={n_fft} must be a power of two >= 4 (radix-4/2 real FFT)")


@functools.lru_cache(maxsize=32)
def spectrum_plan(n_fft: int, win_length: int | None = None) -> SpectrumPlan:
    _check_n_fft(n_fft)
    win_length = n_fft if win_length is None else int(win_length)
    if not 0 < win_length <= n_fft:
        raise ValueError(f"win_length={win_length} must be in 1..n_fft={n_fft}")
    plan = SpectrumPlan(hann_window(win_length, n_fft), *fft_tables(n_fft))
    _readonly(*plan)
    return plan


def _by_bin(basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seg, w1, w2) of MelPlan from the dense basis (n_mels x n_bins)."""
    n_mels, n_bins = basis.shape
    first = np.zeros(n_bins, np.int64)  # band of w1; bins with no weight join the band before
    w1 = np.zeros(n_bins)
    w2 = np.zeros(n_bins)
    band = 0
    for k in range(n_bins):
        nz = np.flatnonzero(basis[:, k])
        if nz.size > 2 or (nz.size == 2 and nz[1] != nz[0] + 1) or (nz.size and nz[0] < band):
            raise NotImplementedError("mel filters that overlap more than their neighbours")
        if nz.size:
            band = int(nz[0])
            w1[k] = basis[band, k]
            if nz.size == 2:
                w2[k] = basis[band + 1, k]
        first[k] = band
    seg = np.searchsorted(first, np.arange(n_mels + 1), side="left").astype(np.int64)
    return seg, w1, w2


@functools.lru_cache(maxsize=32)
def mel_plan(sr: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
             htk: bool = False, norm: str | None = "slaney", dtype: type = np.float32) -> MelPlan:
    if norm not in ("slaney", None):
        raise NotImplementedError(f"mel norm={norm!r}: only 'slaney' and None are implemented")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"mel basis dtype must be float32 or float64, not {dtype}")
    fmax = float(sr) / 2 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax:
        raise ValueError(f"need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    basis = mel_filterbank(float(sr), int(n_fft), int(n_mels), float(fmin), fmax, bool(htk), norm == "slaney",
                           np.dtype(dtype) == np.float32)
    seg, w1, w2 = _by_bin(basis)
    plan = MelPlan(basis.astype(dtype), seg, w1, w2)
    _readonly(*plan)
    return plan


DCT_ALIGN = 16  # dct_plan's row width is n_mels rounded up to this: whole vector steps in the MFCC kernel


@functools.lru_cache(maxsize=32)
def dct_plan(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Rows 0..n_mfcc-1 of the DCT-II matrix (n_mfcc x width), zero columns after n_mels up to the
    width, n_mels rounded up to DCT_ALIGN: the MFCC kernel takes each row's dot product with
    zero-padded log-mel in whole vector steps, with no scalar remainder."""
    if not 0 < n_mfcc <= n_mels:
        raise ValueError(f"need 0 < n_mfcc <= n_mels, got n_mfcc={n_mfcc}, n_mels={n_mels}")
    d = np.zeros((int(n_mfcc), (int(n_mels) + DCT_ALIGN - 1) // DCT_ALIGN * DCT_ALIGN))
    d[:, :n_mels] = dct_ortho_matrix(int(n_mfcc), int(n_mels))
    _readonly(d)
    return d


def mel(*, sr: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
        htk: bool = False, norm: str | None = "slaney", dtype: type = np.float32) -> np.ndarray:
    """`librosa.filters.mel` equivalent (a fresh writable copy of the cached basis)."""
    plan = mel_plan(float(sr), int(n_fft), int(n_mels), float(fmin), fmax, bool(htk), norm, np.dtype(dtype).type)
    return plan.basis.copy()
