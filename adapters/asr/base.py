"""Speech recognition interface: push 16 kHz PCM, get partial and final hypotheses."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class WordTiming:
    word: str
    start_s: float
    end_s: float
    confidence: float | None = None


@dataclass(frozen=True)
class RecognitionOptions:
    """What the session asks of one utterance's recognition (`audio.input.transcription`): each recogniser
    honours what its model allows (an English-only model keeps English; pocketsphinx takes no prompt)."""

    language: str | None = None  # ISO-639-1, e.g. "en"
    prompt: str | None = None  # vocabulary or context that biases the decoding


@dataclass(frozen=True)
class Transcript:
    """A hypothesis for the audio pushed so far; `is_final` once the utterance is closed."""

    text: str
    is_final: bool
    words: tuple[WordTiming, ...] = field(default_factory=tuple)
    confidence: float | None = None
    audio_s: float = 0.0


class RecognitionStream(abc.ABC):
    """Recognition of one utterance. Owned by the turn that opened it."""

    @abc.abstractmethod
    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        """Feed mono int16 PCM at 16 kHz; return a partial when the hypothesis changed.

        `partial=False` asks for no partial work on this audio (a lagging session sheds it); the final
        still covers everything pushed."""

    @abc.abstractmethod
    async def finish(self) -> Transcript:
        """Close the utterance and return the final hypothesis for everything pushed."""

    def speculate(self) -> None:
        """The user has been silent a while after speech: the utterance may be over. A recogniser whose final is
        costly may start it now over the audio so far: unless `speech_resumed()` comes, only silence follows, and
        `finish()` may use it."""

    def speech_resumed(self) -> None:
        """The user speaks again after `speculate()`: a final started then is moot."""

    async def speculation(self) -> Transcript | None:
        """After `speculate()`: the final `finish()` gives if only silence follows, once it is decoded (a turn may
        ask for its reply with it before the endpoint). None where nothing is decoded ahead, or speech came back."""
        return None

    def expedite(self) -> None:
        """The utterance has ended and a user waits for its final: a recogniser shared by many streams may
        do this stream's remaining work before the work of streams still speaking."""

    async def aclose(self) -> None:
        """Release engine resources; safe to call after `finish` or instead of it."""


class SpeechRecognizer(abc.ABC):
    """A recognition engine shared by all sessions; `stream()` opens one utterance."""

    name: str = "asr"
    sample_rate: int = SAMPLE_RATE

    async def start(self) -> None:
        """Load models ahead of the first call (server start-up)."""

    @abc.abstractmethod
    def stream(self, options: RecognitionOptions | None = None) -> RecognitionStream: ...

    def backlog(self) -> dict[str, float]:
        """Seconds of audio waiting to be recognised, per worker (what admission control and /metrics read)."""
        return {}

    def occupancy(self) -> dict[str, float]:
        """Cumulative seconds each worker has had recognition work to do (its utilisation, read over a window)."""
        return {}

    async def aclose(self) -> None:
        """Free shared resources."""
