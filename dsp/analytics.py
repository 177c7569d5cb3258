"""Per-utterance energy analytics from streamed feature frames: loudness, voicing, rate, a label.

`UtteranceAnalytics` folds `FeatureFrames` into running sums as they arrive (one small float64
array: sums and the nucleus detector's state; no audio and no per-frame values are kept), and
`summary()` turns them into an `AudioAnalytics` record.

Definitions (dBFS: 20*log10(rms), full-scale square wave = 0 dBFS, full-scale sine = -3):
- active frames: frames with RMS >= ACTIVE_RMS_DBFS; loudness, ZCR and entropy means are taken
  over active frames (pauses would otherwise dilute them), or over all frames if none is active.
- mean_rms_dbfs: the energy mean, 10*log10(mean(rms^2)); peak_rms_dbfs: the loudest frame.
- syllables: syllable nuclei counted as peaks of the energy envelope (300-3400 Hz band energy,
  dBFS, moving average over NUCLEUS_SMOOTH_FRAMES) that rise >= NUCLEUS_RISE_DB above the
  preceding valley, reach NUCLEUS_FLOOR_DBFS, and are followed by a dip >= NUCLEUS_DIP_DB
  (vowels are the local energy maxima of speech). On the nine speech fixtures the count is
  within 8% RMS of the transcripts' syllable counts (the constants were tuned on them).
- speech_rate_hz: syllables / active duration (nuclei per second of active speech;
  conversational English is about 3-5.5).
- clipped_ratio: mean over active frames of the fraction of samples at full scale (|x| >= 0.999),
  i.e. about the fraction of the utterance's samples that clip.

Label (first rule that matches):
- "anomalous": no active frame; or clipped_ratio >= CLIP_RATIO; or near-DC / tonal (mean
  ZCR < DC_ZCR or mean entropy < TONAL_ENTROPY: a hum or a pure tone, not a voice); or
  broadband noise (mean entropy >= NOISE_ENTROPY at mean RMS >= NOISE_RMS_DBFS: speech is
  never that spectrally flat at that level).
- "whisper": mean RMS < WHISPER_RMS_DBFS with unvoiced spectra (mean ZCR >= WHISPER_ZCR or
  mean entropy >= WHISPER_ENTROPY).
- "excited": mean RMS >= EXCITED_RMS_DBFS and speech_rate_hz >= EXCITED_RATE_HZ.
- "normal": everything else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from dsp import kernels
from dsp.streaming import FeatureFrames

ACTIVE_RMS_DBFS = -50.0
NUCLEUS_SMOOTH_FRAMES = 6  # moving average of the envelope before peak picking (60 ms at 10 ms hop)
NUCLEUS_RISE_DB = 4.0
NUCLEUS_DIP_DB = 4.0
NUCLEUS_FLOOR_DBFS = -45.0
CLIP_RATIO = 0.002
DC_ZCR = 0.005
TONAL_ENTROPY = 0.25
NOISE_ENTROPY = 0.85
NOISE_RMS_DBFS = -45.0
WHISPER_RMS_DBFS = -30.0
WHISPER_ZCR = 0.25
WHISPER_ENTROPY = 0.75
EXCITED_RMS_DBFS = -20.0
EXCITED_RATE_HZ = 4.5

LABELS = ("whisper", "normal", "excited", "anomalous")
_FLOOR = 1e-10  # mean-square floor: -100 dBFS
_ACTIVE_MS = 10.0 ** (ACTIVE_RMS_DBFS / 10.0)


@dataclass(frozen=True)
class AudioAnalytics:
    """Summary of one utterance (see the module docstring for every definition)."""

    duration_s: float
    frames: int
    active_frames: int
    mean_rms_dbfs: float
    peak_rms_dbfs: float
    mean_zcr: float
    mean_spectral_entropy: float
    clipped_ratio: float
    syllables: int
    speech_rate_hz: float
    label: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _dbfs(mean_square: float) -> float:
    return 10.0 * math.log10(max(_FLOOR, mean_square))


# accumulator slots: frames, active frames, then sums of rms^2, zcr, entropy (all / active),
# the loudest rms^2, the active frames' clipped fractions, nuclei; then the nucleus detector state
_N, _NA, _MS, _MS_A, _ZCR, _ZCR_A, _ENT, _ENT_A, _PEAK, _CLIP, _NUC, _DETECTOR = range(12)


@njit(cache=True, error_model="numpy")
def _accumulate(data, r, acc, active_ms, rise_db, dip_db, floor_db):
    """Fold the frames of one FeatureFrames block (rows r..r+4: rms, zcr, entropy, envelope,
    clipped) into acc, in frame order, so any chunking gives the same sums."""
    for t in range(data.shape[1]):
        ms = np.float64(data[r, t]) ** 2
        zcr = np.float64(data[r + 1, t])
        ent = np.float64(data[r + 2, t])
        acc[_N] += 1.0
        acc[_MS] += ms
        acc[_ZCR] += zcr
        acc[_ENT] += ent
        acc[_PEAK] = max(acc[_PEAK], ms)
        if ms >= active_ms:
            acc[_NA] += 1.0
            acc[_MS_A] += ms
            acc[_ZCR_A] += zcr
            acc[_ENT_A] += ent
            acc[_CLIP] += np.float64(data[r + 4, t])
    acc[_NUC] += kernels.count_peaks(data[r + 3], acc[_DETECTOR:], rise_db, dip_db, floor_db)


class UtteranceAnalytics:
    """Accumulates the FeatureFrames of one utterance; `summary()` at any time, `reset()` to reuse.

    Its whole state is one small float64 array of sums (plus the frame duration): one numba
    call per `add`, no audio and nothing that grows with the utterance."""

    __slots__ = ("_acc", "_hop_s")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._hop_s = 0.0
        self._acc = np.concatenate([np.zeros(_DETECTOR), kernels.peak_state(NUCLEUS_SMOOTH_FRAMES)])

    def add(self, frames: FeatureFrames) -> None:
        if frames.n_frames == 0:
            return
        c = frames.config
        self._hop_s = c.hop_length / c.sr
        _accumulate(frames.data, c.n_mels + c.n_mfcc, self._acc, _ACTIVE_MS, NUCLEUS_RISE_DB, NUCLEUS_DIP_DB,
                    NUCLEUS_FLOOR_DBFS)

    def summary(self) -> AudioAnalytics:
        acc = self._acc
        n, na = int(acc[_N]), int(acc[_NA])
        if na:
            ms, zcr, ent = acc[_MS_A] / na, acc[_ZCR_A] / na, acc[_ENT_A] / na
        elif n:
            ms, zcr, ent = acc[_MS] / n, acc[_ZCR] / n, acc[_ENT] / n
        else:
            ms = zcr = ent = 0.0
        nuclei = int(acc[_NUC])
        active_s = na * self._hop_s
        rate = nuclei / active_s if active_s > 0 else 0.0
        values = {
            "duration_s": n * self._hop_s,
            "frames": n,
            "active_frames": na,
            "mean_rms_dbfs": _dbfs(ms),
            "peak_rms_dbfs": _dbfs(acc[_PEAK]),
            "mean_zcr": zcr,
            "mean_spectral_entropy": ent,
            "clipped_ratio": acc[_CLIP] / na if na else 0.0,
            "syllables": nuclei,
            "speech_rate_hz": rate,
        }
        return AudioAnalytics(**values, label=classify(**values))


def classify(*, active_frames: int, mean_rms_dbfs: float, mean_zcr: float, mean_spectral_entropy: float,
             clipped_ratio: float, speech_rate_hz: float, **_) -> str:
    """The label rules of the module docstring, on summary values."""
    if active_frames == 0 or clipped_ratio >= CLIP_RATIO:
        return "anomalous"
    if mean_zcr < DC_ZCR or mean_spectral_entropy < TONAL_ENTROPY:
        return "anomalous"
    if mean_spectral_entropy >= NOISE_ENTROPY and mean_rms_dbfs >= NOISE_RMS_DBFS:
        return "anomalous"
    if mean_rms_dbfs < WHISPER_RMS_DBFS and (mean_zcr >= WHISPER_ZCR or mean_spectral_entropy >= WHISPER_ENTROPY):
        return "whisper"
    if mean_rms_dbfs >= EXCITED_RMS_DBFS and speech_rate_hz >= EXCITED_RATE_HZ:
        return "excited"
    return "normal"
