"""Scores of synthesised speech: DNSMOS P.835 (speechmos: Microsoft's ONNX models, no reference needed) and
MOS-LQO (ITU-T P.862.2 wide-band PESQ, `pesq`) of the speech after our Opus path (dsp.opus at 48 kHz, as the
WebRTC track and `audio/opus` sessions send it) against the same speech before it.

Both are CPU work of tens of milliseconds a second of audio: callers run them in a worker thread
(`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import numpy as np

from dsp import OPUS_RATE, OpusDecoder, OpusEncoder, resample

RATE = 16000  # both models score 16 kHz speech


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    return resample(np.asarray(pcm, dtype=np.int16), rate, RATE)


def dnsmos(pcm: np.ndarray, rate: int) -> dict[str, float]:
    """OVRL (overall), SIG (speech), BAK (background), P808, each 1..5."""
    from speechmos import dnsmos as model  # its ONNX sessions load on first use

    audio = np.clip(to_16k(pcm, rate).astype(np.float32) / 32768.0, -1.0, 1.0)
    scores = model.run(audio, RATE)
    return {k: float(scores[k]) for k in ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos")}


def opus_round_trip(pcm: np.ndarray, rate: int) -> np.ndarray:
    """The speech as a listener gets it: up to 48 kHz, Opus-encoded in 20 ms frames and decoded, back at `rate`."""
    encoder, decoder = OpusEncoder(), OpusDecoder()
    packets = encoder.encode(resample(np.asarray(pcm, dtype=np.int16), rate, OPUS_RATE)) + encoder.flush()
    decoded = np.concatenate([decoder.decode(p) for p in packets]) if packets else np.zeros(0, np.int16)
    return resample(decoded, OPUS_RATE, rate)


def mos_lqo(reference: np.ndarray, degraded: np.ndarray, rate: int) -> float | None:
    """Wide-band PESQ MOS-LQO (1.04..4.64) of `degraded` against `reference`; None when the clip is too short or
    silent for PESQ to judge."""
    from pesq import PesqError, pesq

    ref, deg = to_16k(reference, rate), to_16k(degraded, rate)
    n = min(len(ref), len(deg))
    if n < RATE // 4:
        return None
    try:
        return float(pesq(RATE, ref[:n].astype(np.float32), deg[:n].astype(np.float32), "wb"))
    except PesqError:
        return None


def synthesis_scores(pcm: np.ndarray, rate: int) -> dict[str, float]:
    """DNSMOS of what the engine made, and MOS-LQO of it after the Opus path."""
    out = dnsmos(pcm, rate)
    lqo = mos_lqo(pcm, opus_round_trip(pcm, rate), rate)
    if lqo is not None:
        out["mos_lqo"] = lqo
    return out
