"""Shared by the tests of the real local models: word error rate with a fair normaliser, and whole-utterance
recognition through the streaming recogniser."""

from __future__ import annotations

import re

import jiwer
import numpy as np

from adapters.asr.base import SAMPLE_RATE, SpeechRecognizer
from dsp.resample import resample

FRAME = SAMPLE_RATE // 50  # 20 ms

_NUMBERS = {str(i): w for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_SPELLED = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def normalise(text: str) -> str:
    """Lower case, no punctuation, numerals and abbreviations spelled out (Whisper writes "10 of clubs" and
    "Mr. John" where the reference says "ten of clubs" and "mister john"), hyphenated words joined."""
    text = text.lower().replace("-", "")
    words = re.sub(r"[^a-z0-9' ]+", " ", text).split()
    return " ".join(_NUMBERS.get(w, _SPELLED.get(w, w)) for w in words)


def wer(references: list[str], hypotheses: list[str]) -> float:
    return jiwer.wer([normalise(r) for r in references], [normalise(h) or "<empty>" for h in hypotheses])


async def transcribe(recognizer: SpeechRecognizer, pcm: np.ndarray, rate: int = SAMPLE_RATE) -> str:
    """Stream `pcm` in 20 ms pushes as a session does, then the final transcript."""
    pcm = resample(np.asarray(pcm, dtype=np.int16), rate, SAMPLE_RATE)
    stream = recognizer.stream()
    try:
        for start in range(0, len(pcm), FRAME):
            await stream.push(pcm[start : start + FRAME])
        return (await stream.finish()).text
    finally:
        await stream.aclose()
