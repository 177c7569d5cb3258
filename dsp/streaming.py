"""Per-stream feature extraction: push PCM of any length, get the frames it completed.

A stream keeps O(n_fft) state (the last n_fft samples and scratch, one float64 array) and
shares its constant tables with every stream of the same configuration. Frame t covers
samples [t*hop, t*hop + n_fft) of everything pushed so far, so the frames equal the batch API
with center=False on the whole signal, bit for bit, with the stream's float32 input rounding.
Log-mel is `power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)`: a stream never sees the
whole input's maximum, so there is no top_db clamp; MFCC are taken from that log-mel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from dsp import kernels
from dsp.features import as_signal, envelope_band
from dsp.filters import dct_plan, mel_plan, spectrum_plan


@dataclass(frozen=True)
class FeatureConfig:
    """Analysis parameters of a stream (hashable: it keys the shared constant tables)."""

    sr: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 40
    n_mfcc: int = 13
    fmin: float = 0.0
    fmax: float | None = None

    def __post_init__(self) -> None:
        if self.hop_length <= 0 or self.n_mels <= 0 or self.sr <= 0:
            raise ValueError(f"invalid feature config {self}")


@dataclass(frozen=True, slots=True)
class FeatureFrames:
    """Frames of every feature, librosa orientation (features x frames), float32, read-only.

    One block holds all rows; the properties are zero-copy views into it:
    log_mel (n_mels), mfcc (n_mfcc), and (1, n_frames) each: rms, zcr, spectral_entropy,
    energy_envelope (dBFS of the 300-3400 Hz band) and clipped (fraction of the frame's samples
    at |x| >= 0.999).
    """

    data: np.ndarray
    config: FeatureConfig = field(repr=False)

    @property
    def n_frames(self) -> int:
        return self.data.shape[1]

    @property
    def log_mel(self) -> np.ndarray:
        return self.data[: self.config.n_mels]

    @property
    def mfcc(self) -> np.ndarray:
        c = self.config
        return self.data[c.n_mels : c.n_mels + c.n_mfcc]

    def _row(self, k: int) -> np.ndarray:
        r = self.config.n_mels + self.config.n_mfcc + k
        return self.data[r : r + 1]

    @property
    def rms(self) -> np.ndarray:
        return self._row(0)

    @property
    def zcr(self) -> np.ndarray:
        return self._row(1)

    @property
    def spectral_entropy(self) -> np.ndarray:
        return self._row(2)

    @property
    def energy_envelope(self) -> np.ndarray:
        return self._row(3)

    @property
    def clipped(self) -> np.ndarray:
        return self._row(4)


_new_frames = object.__new__
_set_data = FeatureFrames.data.__set__  # slot descriptors: no frozen-dataclass __setattr__ detour
_set_config = FeatureFrames.config.__set__


@functools.lru_cache(maxsize=32)
def stream_plan(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """The constant tables of one configuration packed into (fplan float64, iplan int64)."""
    c = config
    sp = spectrum_plan(c.n_fft)
    mp = mel_plan(float(c.sr), c.n_fft, c.n_mels, float(c.fmin), c.fmax, False, "slaney", np.float32)
    dct = dct_plan(c.n_mfcc, c.n_mels)
    lo, hi, scale = envelope_band(c.sr, c.n_fft, window=sp.window)
    fparts = [np.array([scale]), sp.window, sp.tw_re, sp.tw_im, sp.post_re, sp.post_im,
              dct.ravel(), mp.weights]
    foffs = np.cumsum([0] + [len(p) for p in fparts])[:-1]
    iparts = [sp.bitrev, mp.starts, mp.lengths, mp.offsets]
    ioffs = kernels.IPLAN_HEADER + np.cumsum([0] + [len(p) for p in iparts])[:-1]
    header = [c.n_fft, c.hop_length, c.n_mels, c.n_mfcc, lo, hi, *foffs[1:], *ioffs]
    assert len(header) == kernels.IPLAN_HEADER
    fplan = np.concatenate(fparts).astype(np.float64)
    iplan = np.concatenate([np.array(header, np.int64), *iparts]).astype(np.int64)
    fplan.setflags(write=False)
    iplan.setflags(write=False)
    return fplan, iplan


class StreamingFeatures:
    """Log-mel, MFCC, RMS, ZCR, spectral entropy and energy envelope of one live stream.

    `push(pcm)` takes int16 (scaled by 1/32768), float32 or float64 samples (taken as float32),
    or raw little-endian int16 bytes, of any length, and returns a `FeatureFrames` with the
    frames that push completed (possibly zero). NaN/inf raises ValueError and leaves the
    stream unchanged.
    """

    __slots__ = ("_due", "_empty", "_fplan", "_hop", "_iplan", "_n_fft", "_none", "_rows", "_state", "config")

    def __init__(self, sr: int = 16000, n_fft: int = 512, hop_length: int = 160, n_mels: int = 40,
                 n_mfcc: int = 13, fmin: float = 0.0, fmax: float | None = None) -> None:
        self.config = FeatureConfig(int(sr), int(n_fft), int(hop_length), int(n_mels), int(n_mfcc), float(fmin),
                                    None if fmax is None else float(fmax))
        self._fplan, self._iplan = stream_plan(self.config)
        self._state = np.zeros(kernels.state_size(self.config.n_fft, self.config.n_mels, self.config.n_mfcc))
        self._rows = kernels.n_features(self.config.n_mels, self.config.n_mfcc)
        self._n_fft = self.config.n_fft
        self._hop = self.config.hop_length
        self._none = np.empty((self._rows, 0), np.float32)  # the kernel's output when nothing completes
        empty = self._none.view()
        empty.flags.writeable = False
        self._empty = FeatureFrames(empty, self.config)
        self._due = self._n_fft  # samples still needed to complete the next frame

    def push(self, pcm) -> FeatureFrames:
        if type(pcm) is not np.ndarray:
            if isinstance(pcm, (bytes, bytearray, memoryview)):  # copied: a read-only view is another numba type
                pcm = np.frombuffer(pcm, "<i2").copy()
            else:
                pcm = np.asarray(pcm)
        char = pcm.dtype.char
        if char == "d":  # taken as float32 anyway; one compiled variant fewer
            pcm = pcm.astype(np.float32)
        elif char != "h" and char != "f":
            raise TypeError(f"pcm must be int16, float32 or float64, not {pcm.dtype}")
        if pcm.ndim != 1:
            raise ValueError(f"pcm must be mono 1-D, got shape {pcm.shape}")
        if pcm.strides[0] != pcm.itemsize:  # non-contiguous (a strided view): one compiled layout only
            pcm = np.ascontiguousarray(pcm)
        # the frame count is known before the kernel runs: frame k completes at sample n_fft + k*hop
        due = self._due - pcm.shape[0]
        if due > 0:
            kernels.stream_push(pcm, self._fplan, self._iplan, self._state, self._none)
            self._due = due
            return self._empty
        n = 1 + (-due) // self._hop
        data = np.empty((self._rows, n), np.float32)
        kernels.stream_push(pcm, self._fplan, self._iplan, self._state, data)
        self._due = due + n * self._hop
        data.setflags(write=False)
        frames = _new_frames(FeatureFrames)  # = FeatureFrames(data, config), minus the frozen __init__'s cost
        _set_data(frames, data)
        _set_config(frames, self.config)
        return frames

    def reset(self) -> None:
        """Forget buffered samples (start of a new utterance on the same stream)."""
        self._state[:] = 0.0
        self._due = self._n_fft

    @property
    def state_nbytes(self) -> int:
        """Bytes of per-stream state (the constant tables are shared)."""
        return self._state.nbytes


def feature_frames(y, *, sr: int = 16000, n_fft: int = 512, hop_length: int = 160, n_mels: int = 40, n_mfcc: int = 13,
                   fmin: float = 0.0, fmax: float | None = None) -> FeatureFrames:
    """Batch twin of StreamingFeatures: every full frame of y (center=False), same numbers.

    y is taken as float32 like the stream; a signal shorter than n_fft gives zero frames."""
    config = FeatureConfig(int(sr), int(n_fft), int(hop_length), int(n_mels), int(n_mfcc), float(fmin),
                           None if fmax is None else float(fmax))
    fplan, iplan = stream_plan(config)
    y64 = as_signal(y)[0].astype(np.float32).astype(np.float64)
    scratch = np.zeros(kernels.state_size(config.n_fft, config.n_mels, config.n_mfcc))
    data = kernels.frames_all(y64, config.hop_length, fplan, iplan, scratch)
    data.flags.writeable = False
    return FeatureFrames(data, config)
