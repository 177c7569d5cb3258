"""Silero VAD (v6, the ONNX file faster-whisper ships) as a streaming frame classifier at 16 kHz.

The model takes 512-sample windows preceded by the last 64 samples of the previous window (the v5/v6 "context"),
plus an LSTM state `(h, c)` that it returns updated; both are carried across calls here, so any chunking of the
input gives exactly the probabilities of one big push. This is how `faster_whisper/vad.py` feeds the same file,
one window at a time instead of a batch.

One `onnxruntime.InferenceSession` per model file is shared by every `SileroVad` (the session is stateless: the state
lives in each `SileroVad`), single-threaded: about 0.1 ms per 32 ms window.

`FrameVad` is the small protocol a session needs to pick a detector per session (`turn_detection.vad` =
"webrtc" | "silero"); `make_frame_vad` builds one. Both detectors take 20 ms int16 frames at 16 kHz.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 512  # 32 ms
CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)
MODEL_FILE = "silero_vad_v6.onnx"


class SileroUnavailable(RuntimeError):
    """onnxruntime or the Silero model file is missing or unusable."""


@runtime_checkable
class FrameVad(Protocol):
    """A per-session speech/non-speech classifier of 20 ms int16 frames at 16 kHz."""

    name: str

    def is_speech(self, frame: np.ndarray) -> bool: ...

    def set_threshold(self, threshold: float) -> None: ...


def default_model_path() -> Path:
    """`faster_whisper/assets/silero_vad_v6.onnx`, found without importing faster_whisper (or anything of ours)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise SileroUnavailable("faster-whisper is not installed, and it carries the Silero VAD model")
    for location in spec.submodule_search_locations:
        path = Path(location) / "assets" / MODEL_FILE
        if path.is_file():
            return path
    raise SileroUnavailable(f"{MODEL_FILE} not found in the faster_whisper package")


@functools.lru_cache(maxsize=4)
def _session(path: str):
    try:
        import onnxruntime
    except ImportError as exc:
        raise SileroUnavailable(f"Silero VAD needs onnxruntime: {exc}") from exc
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    try:
        return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise SileroUnavailable(f"cannot load Silero VAD model {path}: {exc}") from exc


class SileroVad:
    """Streaming Silero VAD for one audio stream; `process` any length, `is_speech` per 20 ms frame."""

    name = "silero"

    def __init__(self, threshold: float = 0.5, model_path: str | Path | None = None) -> None:
        self.set_threshold(threshold)
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise SileroUnavailable(f"Silero VAD model not found: {path}")
        self._session = _session(str(path))
        self._lock = threading.Lock()
        self.reset()

    def set_threshold(self, threshold: float) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be within 0.0 and 1.0")
        self.threshold = float(threshold)

    def reset(self) -> None:
        """Forget the stream: state, context and any partial window."""
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self.probability = 0.0  # of the latest completed window
        self.windows = 0

    def process(self, pcm: np.ndarray) -> list[float]:
        """Feed mono int16 PCM at 16 kHz (any length); return the probability of each window it completed."""
        pcm = np.asarray(pcm)
        if pcm.ndim != 1:
            raise ValueError("mono PCM expected")
        samples = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
        with self._lock:
            buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
            n = buf.size // WINDOW_SAMPLES
            probs: list[float] = []
            for i in range(n):
                window = buf[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES]
                x = np.concatenate([self._context, window])[np.newaxis, :]
                out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
                self._context = window[-CONTEXT_SAMPLES:].copy()
                probs.append(float(np.asarray(out).reshape(-1)[0]))
            self._pending = buf[n * WINDOW_SAMPLES :].copy()
            if probs:
                self.probability = probs[-1]
                self.windows += len(probs)
        return probs

    def is_speech(self, frame: np.ndarray) -> bool:
        """`WebRtcVad.is_speech` for 20 ms frames: the latest window's probability against the threshold.

        Windows are 32 ms, so a frame that completes none keeps the previous decision (False before the first).
        """
        self.process(frame)
        return self.probability > self.threshold


def make_frame_vad(kind: str = "webrtc", threshold: float = 0.5) -> FrameVad:
    """The session's detector: "webrtc" (dsp.vad.WebRtcVad) or "silero" (SileroVad)."""
    if kind == "silero":
        return SileroVad(threshold)
    if kind == "webrtc":
        from dsp.vad import WebRtcVad

        return WebRtcVad(threshold)
    raise ValueError(f"unknown VAD {kind!r}: expected 'webrtc' or 'silero'")
