"""G.711 mu-law and A-law at 8 kHz (`audio/pcmu`, `audio/pcma`), vectorised with lookup tables."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


@lru_cache(maxsize=None)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode tables, and encode tables over all 65536 int16 values (nearest code by decoding)."""
    udec, adec = _ulaw_decode_table(), _alaw_decode_table()
    return udec, adec, _encode_table(udec), _encode_table(adec)


def _encode_table(dec: np.ndarray) -> np.ndarray:
    order = np.argsort(dec, kind="stable")
    sorted_vals = dec[order].astype(np.int32)
    x = np.arange(-32768, 32768, dtype=np.int32)
    idx = np.clip(np.searchsorted(sorted_vals, x), 1, 255)
    left, right = sorted_vals[idx - 1], sorted_vals[idx]
    pick = np.where(np.abs(x - left) <= np.abs(right - x), idx - 1, idx)
    return order[pick].astype(np.uint8)


def ulaw_decode(data: bytes) -> np.ndarray:
    return _tables()[0][np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> np.ndarray:
    return _tables()[1][np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(pcm: np.ndarray) -> bytes:
    return _tables()[2][np.asarray(pcm, dtype=np.int32) + 32768].tobytes()


def alaw_encode(pcm: np.ndarray) -> bytes:
    return _tables()[3][np.asarray(pcm, dtype=np.int32) + 32768].tobytes()
