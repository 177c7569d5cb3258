"""Per-stream feature extraction: push PCM of any length, get the frames it completed.

A stream keeps O(n_fft) state (its last samples and scratch) in one float64 array, writes
its frames into a float32 room for the next ROOM_FRAMES, and shares its constant tables with
every stream of the same configuration. Frame t covers
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
_stream_push = kernels.stream_push

ROOM_FRAMES = 32  # output frames per room (0.32 s at a 10 ms hop): one allocation per 32 frames


@functools.lru_cache(maxsize=32)
def stream_plan(config: FeatureConfig) -> np.ndarray:
    """The constant tables of one configuration packed into one read-only float64 array (see kernels)."""
    c = config
    sp = spectrum_plan(c.n_fft)
    mp = mel_plan(float(c.sr), c.n_fft, c.n_mels, float(c.fmin), c.fmax, False, "slaney", np.float32)
    dct = dct_plan(c.n_mfcc, c.n_mels)
    lo, hi, scale = envelope_band(c.sr, c.n_fft, window=sp.window)
    tables = [sp.window, sp.tw_re, sp.tw_im, sp.post_re, sp.post_im,
              mp.seg.view(np.float64), mp.w1, mp.w2, dct.ravel()]
    offsets = kernels.PLAN_HEADER + np.cumsum([0] + [len(t) for t in tables])
    header = [c.n_fft, c.hop_length, c.n_mels, c.n_mfcc, dct.shape[1], lo, hi, scale,
              kernels.ln32(kernels.LOG_MEL_AMIN), *offsets]
    assert len(header) == kernels.PLAN_HEADER
    plan = np.concatenate([np.array(header, np.float64), *tables])
    plan.setflags(write=False)
    return plan


class StreamingFeatures:
    """Log-mel, MFCC, RMS, ZCR, spectral entropy and energy envelope of one live stream.

    `push(pcm)` takes int16 (scaled by 1/32768), float32 or float64 samples (taken as float32),
    or raw little-endian int16 bytes, of any length, and returns a `FeatureFrames` with the
    frames that push completed (possibly zero). NaN/inf raises ValueError and leaves the
    stream unchanged. Frames are written into a room that is never rewritten (a full one
    is replaced), so every FeatureFrames handed out stays valid; the common case (contiguous
    int16 or float32) is one numba call plus a view.
    """

    __slots__ = ("_cursor", "_empty", "_frames", "_plan", "_room", "_rows", "_state", "config")

    def __init__(self, sr: int = 16000, n_fft: int = 512, hop_length: int = 160, n_mels: int = 40,
                 n_mfcc: int = 13, fmin: float = 0.0, fmax: float | None = None) -> None:
        self.config = FeatureConfig(int(sr), int(n_fft), int(hop_length), int(n_mels), int(n_mfcc), float(fmin),
                                    None if fmax is None else float(fmax))
        c = self.config
        self._plan = stream_plan(c)
        self._rows = kernels.n_features(c.n_mels, c.n_mfcc)
        self._state = np.zeros(kernels.state_size(c.n_fft, c.n_mels, c.n_mfcc))
        empty = np.empty((self._rows, 0), np.float32)
        empty.flags.writeable = False
        self._empty = FeatureFrames(empty, c)
        self._new_room(ROOM_FRAMES)

    def _new_room(self, cap: int) -> None:
        """Continue in a fresh room for `cap` frames; frames handed out keep the old one."""
        room = np.empty(cap * self._rows, np.float32)
        frames = room.reshape(cap, self._rows).T
        frames.flags.writeable = False  # a read-only view: the kernel writes through `room`
        self._state[2] = 0.0  # cursor
        self._room, self._frames, self._cursor = room, frames, 0

    def push(self, pcm) -> FeatureFrames:
        if type(pcm) is not np.ndarray:
            pcm = _as_pcm(pcm)
        try:
            n = _stream_push(pcm, self._plan, self._state, self._room)
        except TypeError:  # not a contiguous writable int16/float32 vector: normalise once, then again
            return self.push(_as_pcm(pcm))
        if n <= 0:
            if n == 0:
                return self._empty
            self._new_room(max(ROOM_FRAMES, -n))  # the room was too small: nothing was taken yet
            return self.push(pcm)
        start = self._cursor
        self._cursor = start + n
        frames = _new_frames(FeatureFrames)  # = FeatureFrames(view, config), minus the frozen __init__'s cost
        _set_data(frames, self._frames[:, start:start + n])
        _set_config(frames, self.config)
        return frames

    def reset(self) -> None:
        """Forget buffered samples (start of a new utterance on the same stream)."""
        self._state[:2] = 0.0  # fill, start

    @property
    def state_nbytes(self) -> int:
        """Bytes of per-stream state: samples and scratch (the tables are shared; the output
        room, ROOM_FRAMES frames, is extra)."""
        return self._state.nbytes


def _as_pcm(pcm) -> np.ndarray:
    """pcm as a contiguous writable 1-D int16 or float32 array (the kernel's two variants), or a clear error."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        return np.frombuffer(pcm, "<i2").copy()
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise ValueError(f"pcm must be mono 1-D, got shape {pcm.shape}")
    char = pcm.dtype.char
    if char == "d":  # taken as float32, like the batch API
        return pcm.astype(np.float32)
    if char != "h" and char != "f":
        raise TypeError(f"pcm must be int16, float32 or float64, not {pcm.dtype}")
    return pcm if pcm.flags.c_contiguous and pcm.flags.writeable else pcm.copy()


def feature_frames(y, *, sr: int = 16000, n_fft: int = 512, hop_length: int = 160, n_mels: int = 40, n_mfcc: int = 13,
                   fmin: float = 0.0, fmax: float | None = None) -> FeatureFrames:
    """Batch twin of StreamingFeatures: every full frame of y (center=False), same numbers.

    y is taken as float32 like the stream; a signal shorter than n_fft gives zero frames."""
    config = FeatureConfig(int(sr), int(n_fft), int(hop_length), int(n_mels), int(n_mfcc), float(fmin),
                           None if fmax is None else float(fmax))
    y64 = as_signal(y)[0].astype(np.float32).astype(np.float64)
    data = kernels.frames_all(y64, config.hop_length, stream_plan(config)).T  # frame-major, like a stream's room
    data.flags.writeable = False
    return FeatureFrames(data, config)
