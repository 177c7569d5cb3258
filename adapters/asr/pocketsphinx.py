"""pocketsphinx: the embedded offline recogniser, with its bundled en-US model.

Decoders take ~0.35 s to load, so the recogniser keeps a pool of warm decoders and lends one
to each utterance. fwdflat is off: it costs 100-300 ms at end of utterance for no measurable gain.
"""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass

import numpy as np

from adapters.asr.base import SAMPLE_RATE, RecognitionStream, SpeechRecognizer, Transcript, WordTiming
from adapters.errors import AdapterError, AdapterUnavailable

FRAMES_PER_SECOND = 100  # pocketsphinx's default frame rate
_FILLERS = {"<s>", "</s>", "<sil>", "[NOISE]", "[BREATH]", "[SMACK]", "[COUGH]", "[UM]", "[UH]", "++NOISE++"}


@dataclass(frozen=True)
class PocketsphinxConfig:
    pool_size: int = 2
    partial_interval_s: float = 0.2
    max_utterance_s: float = 60.0


class PocketsphinxRecognizer(SpeechRecognizer):
    name = "pocketsphinx"

    def __init__(self, config: PocketsphinxConfig | None = None) -> None:
        self.config = config or PocketsphinxConfig()
        self._pool: list[object] = []
        self._lock = threading.Lock()

    def _new_decoder(self) -> object:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise AdapterUnavailable(f"pocketsphinx is not installed: {exc}") from exc
        return Decoder(samprate=SAMPLE_RATE, fwdflat=False, loglevel="FATAL")

    async def start(self) -> None:
        decoders = [await asyncio.to_thread(self._new_decoder) for _ in range(self.config.pool_size)]
        with self._lock:
            self._pool.extend(decoders)

    def acquire(self) -> object:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return self._new_decoder()

    def release(self, decoder: object) -> None:
        with self._lock:
            if len(self._pool) < self.config.pool_size * 4:
                self._pool.append(decoder)

    def stream(self) -> RecognitionStream:
        return PocketsphinxStream(self)

    async def aclose(self) -> None:
        with self._lock:
            self._pool.clear()


class PocketsphinxStream(RecognitionStream):
    def __init__(self, owner: PocketsphinxRecognizer) -> None:
        self._owner = owner
        self._decoder = None
        self._samples = 0
        self._last_partial = ""
        self._since_partial = 0
        self._closed = False

    def _ensure_started(self) -> object:
        if self._decoder is None:
            self._decoder = self._owner.acquire()
            self._decoder.start_utt()
        return self._decoder

    def _process(self, pcm: bytes, want_partial: bool) -> str | None:
        decoder = self._ensure_started()
        decoder.process_raw(pcm, False, False)
        if not want_partial:
            return None
        hyp = decoder.hyp()
        return _clean(hyp.hypstr) if hyp is not None else ""

    async def push(self, pcm: np.ndarray) -> Transcript | None:
        if self._closed:
            raise AdapterError("recognition stream already finished")
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        if self._samples / SAMPLE_RATE >= self._owner.config.max_utterance_s:
            return None  # bounded: audio past the limit is ignored rather than growing the lattice
        self._samples += len(pcm)
        self._since_partial += len(pcm)
        want = self._since_partial >= self._owner.config.partial_interval_s * SAMPLE_RATE
        if want:
            self._since_partial = 0
        text = await asyncio.to_thread(self._process, pcm.tobytes(), want)
        if text is None or text == self._last_partial:
            return None
        self._last_partial = text
        return Transcript(text=text, is_final=False, audio_s=self._samples / SAMPLE_RATE)

    def _final(self) -> Transcript:
        decoder = self._ensure_started()
        decoder.end_utt()
        hyp = decoder.hyp()
        words: list[WordTiming] = []
        for seg in decoder.seg():
            if seg.word in _FILLERS or seg.word.startswith("["):
                continue
            words.append(
                WordTiming(
                    word=_strip_variant(seg.word),
                    start_s=seg.start_frame / FRAMES_PER_SECOND,
                    end_s=(seg.end_frame + 1) / FRAMES_PER_SECOND,
                    confidence=_posterior(seg.prob),
                )
            )
        text = _clean(hyp.hypstr) if hyp is not None else ""
        confs = [w.confidence for w in words if w.confidence is not None]
        confidence = float(np.mean(confs)) if confs else None
        return Transcript(text=text, is_final=True, words=tuple(words), confidence=confidence, audio_s=self._samples / SAMPLE_RATE)

    async def finish(self) -> Transcript:
        if self._closed:
            raise AdapterError("recognition stream already finished")
        self._closed = True
        try:
            return await asyncio.to_thread(self._final)
        finally:
            self._give_back()

    def _give_back(self) -> None:
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            self._owner.release(decoder)

    async def aclose(self) -> None:
        if not self._closed and self._decoder is not None:
            self._closed = True
            decoder = self._decoder
            await asyncio.to_thread(decoder.end_utt)
            self._give_back()
        self._closed = True


def _strip_variant(word: str) -> str:
    """Dictionary variants come as `word(2)`."""
    return word.split("(", 1)[0]


def _clean(text: str) -> str:
    return " ".join(_strip_variant(w) for w in text.split() if w not in _FILLERS and not w.startswith("["))


def _posterior(prob: float) -> float | None:
    """pocketsphinx gives word posteriors as log values in its own base; map to 0..1."""
    if prob is None or math.isnan(prob):
        return None
    value = math.exp(prob) if prob <= 0 else prob
    return max(0.0, min(1.0, value))
