"""Speech synthesis interface: text in, a stream of PCM blocks out."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

import numpy as np


class SpeechSynthesizer(abc.ABC):
    name: str = "tts"
    sample_rate: int = 22050

    async def start(self) -> None:
        """Check the engine is usable before the first call."""

    @abc.abstractmethod
    def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[np.ndarray]:
        """Yield mono int16 blocks at `sample_rate` as they are produced; raise AdapterError on failure."""

    async def aclose(self) -> None:
        """Free resources."""
