"""A fixed-size vector per utterance, from the feature frames the audio loop already computes, for similarity search.

`UtteranceEmbedding` folds `FeatureFrames` into sums per 100 ms as they arrive (no audio and no per-frame values are
kept: 91 numbers per 100 ms, about 3.6 KB a second), and `vector()` turns them into DIM float32 values,
L2-normalised so that cosine similarity is a dot product.

The vector, block by block (each block scaled to unit norm, then weighted: the envelope's shape 2.0, the others
0.5 each; with hops within 20 dB of the loudest taken as active, this ranks each of the nine speech fixtures first
for itself played again at half the gain, through Opus, at 30 dB SNR, and puts "ten of clubs" 0.39 nearer "seven
of clubs" than a sentence of a novel; the spectral means of all speech are much alike, the rhythm is not. Heavy
noise (12 dB SNR) confuses two of the nine):
- MFCC 1-12 mean over active frames (12): the average vocal-tract shape, speaker and phone mix; c0 is left out,
  it is the level, which says nothing about what was said or who said it;
- MFCC 1-12 standard deviation (12): how much the spectrum moves;
- delta-MFCC 1-12 standard deviation (12): how fast it moves (frame-to-frame differences);
- log-mel shape (40): mean log-mel over active frames minus its own mean (the spectral tilt and formant regions,
  independent of gain);
- energy-envelope shape (16): the band-energy envelope from its first active 100 ms to its last, resampled to 16
  points, minus its mean (the rhythm of the phrase, gain-independent, whatever silence pads it).
Active hops are those within ACTIVE_RANGE_DB of the utterance's loudest, so pauses and silence padding change
little, and the gain nothing.

Two renditions of one phrase (the same recording at another gain, with noise, or through the Opus path) land near
each other and far from other phrases (tests/dsp/test_embedding.py). The vector cannot be turned back into audio:
it holds 12+12+12+40+16 statistics of a whole utterance.
"""

from __future__ import annotations

import math

import numpy as np

from dsp.streaming import FeatureFrames

ACTIVE_RANGE_DB = 20.0  # active: a 100 ms hop within this much of the utterance's loudest hop ...
ACTIVE_FLOOR_DBFS = -70.0  # ... and above this (digital silence never is)
HOP_S = 0.1  # the unit of the sums kept, and of the envelope
ENVELOPE_POINTS = 16
MAX_HOPS = 3000  # 5 minutes; an utterance is bounded well below that (voice/limits.py)
N_CEPS = 12
WEIGHTS = {"mfcc_mean": 0.5, "mfcc_std": 0.5, "delta_std": 0.5, "mel_shape": 0.5, "envelope": 2.0}
DIM = N_CEPS * 3 + 40 + ENVELOPE_POINTS
# a hop's row: frames, then sums of MFCC, MFCC squared, delta-MFCC squared, log-mel, then mean power, envelope dB
_N, _SUM, _SQ, _DSQ = 0, 1, 1 + N_CEPS, 1 + 2 * N_CEPS


class UtteranceEmbedding:
    """Sums of one utterance's frames per 100 ms hop (which hops are active is decided at the end, against the
    loudest, so the vector does not depend on the gain)."""

    def __init__(self, n_mels: int = 40) -> None:
        self.n_mels = n_mels
        self._mel = 1 + 3 * N_CEPS
        self._pow = self._mel + n_mels
        self._width = self._pow + 2
        self.reset()

    def reset(self) -> None:
        self._rows: list[np.ndarray] = []
        self._row = np.zeros(self._width)
        self._prev: np.ndarray | None = None
        self._hop_frames = 0

    @property
    def frames(self) -> int:
        return int(sum(r[_N] for r in self._rows) + self._row[_N])

    def add(self, frames: FeatureFrames) -> None:
        n = frames.n_frames
        if n == 0:
            return
        c = frames.config
        per_hop = max(1, round(HOP_S * c.sr / c.hop_length))
        ceps = frames.mfcc[1:1 + N_CEPS].astype(np.float64)
        mel = frames.log_mel.astype(np.float64)
        power = frames.rms[0].astype(np.float64) ** 2
        env = frames.energy_envelope[0].astype(np.float64)
        chain = ceps if self._prev is None else np.concatenate([self._prev[:, None], ceps], axis=1)
        delta = np.diff(chain, axis=1)
        if self._prev is None:
            delta = np.concatenate([np.zeros((N_CEPS, 1)), delta], axis=1)  # the first frame has none
        self._prev = ceps[:, -1].copy()
        j = 0
        while j < n and len(self._rows) < MAX_HOPS:
            k = min(n, j + per_hop - self._hop_frames)
            row = self._row
            row[_N] += k - j
            row[_SUM:_SQ] += ceps[:, j:k].sum(axis=1)
            row[_SQ:_DSQ] += (ceps[:, j:k] ** 2).sum(axis=1)
            row[_DSQ:self._mel] += (delta[:, j:k] ** 2).sum(axis=1)
            row[self._mel:self._pow] += mel[:, j:k].sum(axis=1)
            row[self._pow] += power[j:k].sum()
            row[self._pow + 1] += env[j:k].sum()
            self._hop_frames += k - j
            j = k
            if self._hop_frames == per_hop:
                self._close_hop()

    def _close_hop(self) -> None:
        self._rows.append(self._row)
        self._row = np.zeros(self._width)
        self._hop_frames = 0

    def _hops(self) -> np.ndarray:
        rows = self._rows + ([self._row] if self._row[_N] else [])
        return np.stack(rows) if rows else np.zeros((0, self._width))

    def envelope(self) -> np.ndarray:
        """The utterance's band-energy envelope, dBFS, one value per HOP_S."""
        hops = self._hops()
        return (hops[:, self._pow + 1] / np.maximum(hops[:, _N], 1)).astype(np.float32)

    def vector(self) -> np.ndarray | None:
        """DIM float32 values of unit norm; None for an utterance with fewer than 10 active frames."""
        hops = self._hops()
        if not len(hops):
            return None
        db = 10.0 * np.log10(np.maximum(hops[:, self._pow] / np.maximum(hops[:, _N], 1), 1e-12))
        active = (db >= db.max() - ACTIVE_RANGE_DB) & (db >= ACTIVE_FLOOR_DBFS)
        live = np.flatnonzero(active)
        if not len(live) or hops[active, _N].sum() < 10:
            return None
        a = hops[active]
        n = a[:, _N].sum()
        mean = a[:, _SUM:_SQ].sum(axis=0) / n
        std = np.sqrt(np.maximum(a[:, _SQ:_DSQ].sum(axis=0) / n - mean * mean, 0.0))
        dstd = np.sqrt(a[:, _DSQ:self._mel].sum(axis=0) / n)
        mel = a[:, self._mel:self._pow].sum(axis=0) / n
        mel_shape = mel - mel.mean()
        # the envelope from the first active hop to the last: silence around the utterance is not its shape
        span = hops[live[0]:live[-1] + 1]
        env = span[:, self._pow + 1] / np.maximum(span[:, _N], 1)
        if len(env) >= 2:
            shape = np.interp(np.linspace(0, len(env) - 1, ENVELOPE_POINTS), np.arange(len(env)), env)
        else:
            shape = np.zeros(ENVELOPE_POINTS)
        shape = shape - shape.mean()
        blocks = {"mfcc_mean": mean, "mfcc_std": std, "delta_std": dstd, "mel_shape": mel_shape, "envelope": shape}
        parts = []
        for name, block in blocks.items():
            norm = float(np.linalg.norm(block))
            parts.append(block / norm * WEIGHTS[name] if norm > 0 else block)
        out = np.concatenate(parts)
        norm = float(np.linalg.norm(out))
        return (out / norm).astype(np.float32) if norm > 0 and math.isfinite(norm) else None
