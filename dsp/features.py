"""Batch features with librosa's names, arguments and defaults, computed by the numba kernels.

Swap `librosa.feature.melspectrogram` for `dsp.melspectrogram` (and so on) and get the same
numbers: zero centre padding, periodic Hann window, float32 Slaney mel basis, `top_db` against
the whole input's maximum, rms over unwindowed frames, zcr with edge padding.
Output dtypes follow librosa: float32 audio gives float32 features, float64 gives float64,
and every stage rounds to float32 where librosa's float32 pipeline does.
Differences: mono 1-D input only; window must be "hann"; n_fft a power of two; power 1 or 2;
mel norm "slaney" or None; DCT type 2 orthonormal only. int16 input is accepted (x / 32768).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dsp import kernels
from dsp.filters import dct_plan, mel_plan, spectrum_plan


def as_signal(y) -> tuple[np.ndarray, bool]:
    """Validated mono signal as float64, and whether the float32 pipeline applies."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"audio must be mono 1-D, got shape {y.shape}")
    if y.dtype == np.int16:
        return y.astype(np.float64) / 32768.0, True
    if y.dtype.kind != "f":
        raise TypeError(f"audio must be int16 or floating point, not {y.dtype}")
    f32 = y.dtype.itemsize <= 4
    if f32 and y.dtype != np.float32:
        y = y.astype(np.float32)
    bad = kernels.check_finite(y)
    if bad >= 0:
        raise ValueError(f"audio contains NaN or inf (first at sample {bad})")
    return y.astype(np.float64), f32


def _framed(y: np.ndarray, frame_length: int, hop_length: int, center: bool, pad_mode: str) -> tuple[np.ndarray, int]:
    if not (isinstance(hop_length, (int, np.integer)) and hop_length > 0):
        raise ValueError(f"hop_length={hop_length} must be a positive integer")
    if center:
        y = np.pad(y, frame_length // 2, mode=pad_mode)
    elif y.shape[0] < frame_length:
        raise ValueError(f"input of {y.shape[0]} samples is too short for uncentered frames of {frame_length}")
    return y, kernels.n_frames(y.shape[0], frame_length, hop_length)


def _check_window(window) -> None:
    if window != "hann":
        raise NotImplementedError(f"window={window!r}: only 'hann' is implemented")


def envelope_band(sr: float, n_fft: int, fmin: float = kernels.ENVELOPE_FMIN, fmax: float = kernels.ENVELOPE_FMAX,
                  window: np.ndarray | None = None) -> tuple[int, int, float]:
    """FFT bins [lo, hi) with centre frequency in [fmin, fmax], and the power -> mean-square scale."""
    n_bins = n_fft // 2 + 1
    lo = min(n_bins, max(0, math.ceil(fmin * n_fft / sr)))
    hi = min(n_bins, max(lo, math.floor(fmax * n_fft / sr) + 1))
    window = spectrum_plan(n_fft).window if window is None else window
    return lo, hi, 2.0 / (n_fft * float(np.sum(window * window)))


def melspectrogram(*, y=None, sr: float = 22050, S=None, n_fft: int = 2048, hop_length: int = 512,
                   win_length: int | None = None, window="hann", center: bool = True, pad_mode: str = "constant",
                   power: float = 2.0, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = False, norm: str | None = "slaney", dtype=np.float32) -> np.ndarray:
    """`librosa.feature.melspectrogram`: mel power (n_mels x frames)."""
    if S is not None:
        S = np.asarray(S)
        if S.ndim != 2:
            raise ValueError(f"S must be (n_bins, frames), got shape {S.shape}")
        if n_fft // 2 + 1 != S.shape[0]:
            n_fft = 2 * (S.shape[0] - 1)
        mp = mel_plan(float(sr), int(n_fft), int(n_mels), float(fmin), fmax, bool(htk), norm, np.dtype(dtype).type)
        out = np.empty((n_mels, S.shape[1]))
        kernels.batch_apply_mel(np.ascontiguousarray(S, dtype=np.float64), mp.seg, mp.w1, mp.w2, out)
        return out.astype(np.result_type(S.dtype, mp.basis.dtype, np.float32), copy=False)
    if y is None:
        raise ValueError("either y or S must be given")
    _check_window(window)
    if power not in (1, 2):
        raise NotImplementedError(f"power={power}: only 1 (magnitude) and 2 (power) are implemented")
    y, f32 = as_signal(y)
    sp = spectrum_plan(int(n_fft), win_length)
    mp = mel_plan(float(sr), int(n_fft), int(n_mels), float(fmin), fmax, bool(htk), norm, np.dtype(dtype).type)
    y, n = _framed(y, n_fft, hop_length, center, pad_mode)
    out = np.empty((n_mels, n))
    kernels.batch_mel(y, n_fft, hop_length, *sp, mp.seg, mp.w1, mp.w2, power == 1, out)
    return out.astype(np.result_type(np.float32 if f32 else np.float64, mp.basis.dtype), copy=False)


def power_to_db(S, *, ref: float | Callable = 1.0, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """`librosa.power_to_db`: 10*log10(max(amin, S) / max(amin, ref)), then clamp to max - top_db.

    The clamp uses the maximum over the whole input, so a stream (which never sees the
    whole input) uses top_db=None. Finite float32 S is computed in float32, as librosa does,
    with the vectorised log of kernels.db32_into (within ~2e-5 dB); the rest in float64."""
    S = np.asarray(S)
    if amin <= 0:
        raise ValueError("amin must be strictly positive")
    if np.iscomplexobj(S):
        S = np.abs(S)
    ref_value = ref(S) if callable(ref) else np.abs(ref)
    ref_db = 10.0 * math.log10(max(amin, float(ref_value)))
    if S.dtype == np.float32 and kernels.check_finite(S.reshape(-1)) < 0:  # librosa's float32 path
        out = np.array(S, dtype=np.float32, order="C")
        kernels.batch_db32(out.reshape(-1), float(amin), kernels.ln32(amin), ref_db)
    else:
        out = np.empty(S.shape)
        kernels.batch_db(np.ascontiguousarray(S, dtype=np.float64).reshape(-1), float(amin), ref_db, out.reshape(-1))
        out = out.astype(S.dtype if S.dtype in (np.float32, np.float64) else np.float64, copy=False)
    if top_db is not None:
        if top_db < 0:
            raise ValueError("top_db must be non-negative")
        if out.size:
            out = np.maximum(out, out.max() - top_db)
    return out


def mfcc(*, y=None, sr: float = 22050, S=None, n_mfcc: int = 20, dct_type: int = 2, norm: str | None = "ortho",
         lifter: float = 0, mel_norm: str | None = "slaney", top_db: float | None = 80.0, **kwargs) -> np.ndarray:
    """`librosa.feature.mfcc`: orthonormal DCT-II of log-mel (n_mfcc x frames).

    `top_db` (not a librosa argument; librosa always uses power_to_db's 80) is passed to
    power_to_db; top_db=None gives the stream's MFCCs."""
    if dct_type != 2 or norm != "ortho":
        raise NotImplementedError("only dct_type=2, norm='ortho' is implemented")
    if lifter < 0:
        raise ValueError(f"MFCC lifter={lifter} must be a non-negative number")
    if S is None:
        S = power_to_db(melspectrogram(y=y, sr=sr, norm=mel_norm, **kwargs), top_db=top_db)
    S = np.asarray(S)
    n_out = min(int(n_mfcc), S.shape[0])
    d = dct_plan(n_out, S.shape[0])
    out = np.empty((n_out, S.shape[1]))
    kernels.batch_dct(np.ascontiguousarray(S, dtype=np.float64), d.ravel(), d.shape[1], out)
    out = out.astype(S.dtype if S.dtype in (np.float32, np.float64) else np.float64, copy=False)
    if lifter > 0:
        li = np.sin(np.pi * np.arange(1, 1 + n_mfcc, dtype=out.dtype) / lifter)[: out.shape[0], None]
        out *= 1 + (lifter / 2) * li
    return out


def rms(*, y=None, S=None, frame_length: int = 2048, hop_length: int = 512, center: bool = True,
        pad_mode: str = "constant", dtype=np.float32) -> np.ndarray:
    """`librosa.feature.rms`: sqrt(mean(x^2)) per (unwindowed) frame, or from a magnitude spectrogram S."""
    if y is not None:
        y, _ = as_signal(y)
        y, n = _framed(y, frame_length, hop_length, center, pad_mode)
        out = np.empty((1, n))
        kernels.batch_rms(y, frame_length, hop_length, out)
        return out.astype(dtype, copy=False)
    if S is None:
        raise ValueError("either y or S must be given")
    S = np.asarray(S)
    if S.shape[-2] != frame_length // 2 + 1:
        raise ValueError(f"S.shape[-2] is {S.shape[-2]}; frame_length {frame_length} does not match")
    x = (np.abs(S) ** 2).astype(dtype)
    x[..., 0, :] *= 0.5
    if frame_length % 2 == 0:
        x[..., -1, :] *= 0.5
    return np.sqrt(2 * np.sum(x, axis=-2, keepdims=True) / frame_length**2)


def zero_crossing_rate(y, *, frame_length: int = 2048, hop_length: int = 512, center: bool = True,
                       threshold: float = kernels.ZC_THRESHOLD) -> np.ndarray:
    """`librosa.feature.zero_crossing_rate`: sign changes / frame_length (edge-padded when centred)."""
    y, _ = as_signal(y)
    y, n = _framed(y, frame_length, hop_length, center, "edge")
    out = np.empty((1, n), np.float64)
    kernels.batch_zcr(y, frame_length, hop_length, float(threshold), out)
    return out


def _spectral(y, sr, n_fft, hop_length, win_length, window, center, pad_mode, fmin, fmax):
    _check_window(window)
    y, f32 = as_signal(y)
    sp = spectrum_plan(int(n_fft), win_length)
    lo, hi, scale = envelope_band(sr, n_fft, fmin, fmax, sp.window)
    y, n = _framed(y, n_fft, hop_length, center, pad_mode)
    dt = np.float32 if f32 else np.float64
    entropy, envelope = np.empty((1, n)), np.empty((1, n))
    kernels.batch_spectral(y, n_fft, hop_length, *sp, lo, hi, scale, entropy, envelope)
    return entropy.astype(dt, copy=False), envelope.astype(dt, copy=False)


def spectral_entropy(*, y, n_fft: int = 2048, hop_length: int = 512, win_length: int | None = None, window="hann",
                     center: bool = True, pad_mode: str = "constant") -> np.ndarray:
    """Normalised spectral entropy per frame (1 x frames), in [0, 1].

    H = -sum_k p_k ln p_k / ln(n_fft//2+1) with p_k = P_k / sum_j P_j, P = |rfft(hann * frame)|^2
    (the same power spectrum as the mel spectrogram). 0: one bin holds all the power (a pure
    tone); 1: flat; white noise gives about 0.92; a frame with no power gives 0."""
    return _spectral(y, 22050, n_fft, hop_length, win_length, window, center, pad_mode,
                     kernels.ENVELOPE_FMIN, kernels.ENVELOPE_FMAX)[0]


def energy_envelope(*, y, sr: float = 22050, n_fft: int = 2048, hop_length: int = 512, win_length: int | None = None,
                    window="hann", center: bool = True, pad_mode: str = "constant",
                    fmin: float = kernels.ENVELOPE_FMIN, fmax: float = kernels.ENVELOPE_FMAX) -> np.ndarray:
    """Band energy in dBFS per frame (1 x frames): 10*log10 of the mean square of the signal's
    fmin..fmax band (FFT bins with centre in the band), floored at -100 dB. A full-scale
    sine in the band reads -3 dBFS. Vowels dominate this band, so its peaks mark syllable nuclei."""
    return _spectral(y, sr, n_fft, hop_length, win_length, window, center, pad_mode, fmin, fmax)[1]
