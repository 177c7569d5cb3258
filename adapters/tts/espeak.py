"""espeak-ng: the embedded offline synthesiser (Debian's espeak-ng), streamed from its stdout.

Text goes in on stdin (never argv, so no text can pass as an option); audio is read as it is produced. The process
is started off the event loop (adapters/spawn.py).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from adapters.errors import AdapterError, AdapterUnavailable
from adapters.spawn import spawn
from adapters.tts.base import SpeechSynthesizer

WAV_HEADER_BYTES = 44
READ_BYTES = 4410  # 100 ms at 22.05 kHz s16

# OpenAI voice names mapped onto espeak-ng voice variants, so apps may keep theirs.
VOICES = {
    "alloy": "en-us+f3",
    "ash": "en-us+m3",
    "ballad": "en-us+m5",
    "coral": "en-us+f4",
    "echo": "en-us+m1",
    "sage": "en-us+f2",
    "shimmer": "en-us+f5",
    "verse": "en-us+m2",
    "marin": "en-us+f3",
    "cedar": "en-us+m3",
}


@dataclass(frozen=True)
class EspeakConfig:
    binary: str = "espeak-ng"
    default_voice: str = "en-us"
    words_per_minute: int = 175
    timeout_s: float = 20.0


class EspeakSynthesizer(SpeechSynthesizer):
    name = "espeak-ng"
    sample_rate = 22050

    def __init__(self, config: EspeakConfig | None = None) -> None:
        self.config = config or EspeakConfig()

    async def start(self) -> None:
        if shutil.which(self.config.binary) is None:
            raise AdapterUnavailable(f"{self.config.binary} not found; install the Debian package espeak-ng")

    def _voice(self, voice: str | None) -> str:
        if not voice:
            return self.config.default_voice
        return VOICES.get(voice, self.config.default_voice)

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[np.ndarray]:
        text = text.strip()
        if not text:
            return
        argv = [self.config.binary, "--stdout", "-v", self._voice(voice), "-s", str(self.config.words_per_minute)]
        try:
            proc = await spawn(argv, text.encode("utf-8") + b"\n")  # off the loop: see adapters/spawn.py
        except (FileNotFoundError, PermissionError) as exc:
            raise AdapterUnavailable(f"cannot start {self.config.binary}: {exc}") from exc
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (barge-in).
            async with asyncio.timeout(self.config.timeout_s):
                header = await proc.stdout.readexactly(WAV_HEADER_BYTES)
            if header[:4] != b"RIFF":
                raise AdapterError("espeak-ng did not produce WAV output")
            carry = b""
            while True:
                async with asyncio.timeout(self.config.timeout_s):
                    block = await proc.stdout.read(READ_BYTES)
                if not block:
                    break
                block = carry + block
                cut = len(block) - (len(block) % 2)
                carry = block[cut:]
                if cut:
                    yield np.frombuffer(block[:cut], dtype=np.int16).copy()
            async with asyncio.timeout(self.config.timeout_s):
                code = await proc.wait()
            if code != 0:
                async with asyncio.timeout(self.config.timeout_s):
                    err = (await proc.stderr.read()).decode(errors="replace").strip()
                raise AdapterError(f"espeak-ng exited with {code}: {err}")
        except asyncio.IncompleteReadError as exc:
            raise AdapterError("espeak-ng ended before producing audio") from exc
        except asyncio.TimeoutError as exc:
            raise AdapterError("espeak-ng timed out", outcome="timeout") from exc
        finally:
            await proc.aclose()
