"""voice/recognition.py: BackgroundRecognition: a stream that falls behind sheds partials, says so, and still gives
the final."""

from __future__ import annotations

import asyncio

import numpy as np

from adapters.asr.base import RecognitionStream, Transcript
from voice.recognition import BackgroundRecognition

FRAME = np.ones(320, dtype=np.int16)


class _GatedStream(RecognitionStream):
    """Each push waits for the test to open the gate; records what was asked of it."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.pushes: list[tuple[int, bool]] = []
        self.samples = 0

    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        await self.gate.wait()
        self.pushes.append((len(pcm), partial))
        self.samples += len(pcm)
        return Transcript(f"partial {len(self.pushes)}", False) if partial else None

    async def finish(self) -> Transcript:
        return Transcript("all of it", True, audio_s=self.samples / 16000)


async def _until(predicate, steps: int = 200) -> None:
    for _ in range(steps):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def test_a_lagging_stream_sheds_partials_and_keeps_the_final():
    stream = _GatedStream()
    partials, lagging = [], []
    rec = BackgroundRecognition(stream, partials.append, lambda on, s: lagging.append((on, s)))
    stream.gate.set()
    rec.push(FRAME)
    await _until(lambda: stream.pushes)
    assert stream.pushes[0] == (320, True) and partials  # keeping up: partials asked for and passed on

    stream.gate.clear()  # the recogniser stalls ...
    for _ in range(60):  # ... while 1.2 s of speech arrives
        rec.push(FRAME)
    assert rec.backlog_s > 1.0 and rec.lagging
    assert len(lagging) == 1 and lagging[0][0] is True and lagging[0][1] > 1.0

    seen = len(partials)
    stream.gate.set()
    await _until(lambda: sum(n for n, _ in stream.pushes) >= 61 * 320)
    assert all(not want for _, want in stream.pushes[1:])  # the backlog went in without partial work
    assert len(partials) == seen
    assert lagging[-1][0] is False  # caught up: partials are back

    final = await rec.finish()
    assert final.text == "all of it" and final.audio_s == 61 * 320 / 16000  # no audio was lost
    assert rec.lag_episodes == 1


async def test_a_stream_that_keeps_up_never_reports_lag():
    stream = _GatedStream()
    stream.gate.set()
    lagging = []
    rec = BackgroundRecognition(stream, lambda p: None, lambda on, s: lagging.append(on))
    for _ in range(100):
        rec.push(FRAME)
        await asyncio.sleep(0)
    await rec.finish()
    assert lagging == [] and rec.lag_episodes == 0


async def test_silence_goes_to_the_recogniser_without_starting_a_partial():
    """A pause's audio is recognised with the rest, but asks for no partial decode: the final that follows a pause
    should find the recogniser free."""
    stream = _GatedStream()
    rec = BackgroundRecognition(stream, lambda p: None)
    stream.gate.set()
    rec.push(FRAME)
    await _until(lambda: len(stream.pushes) == 1)
    rec.push(FRAME, voiced=False)
    await _until(lambda: len(stream.pushes) == 2)
    rec.push(FRAME)  # speech again: partials again
    await _until(lambda: len(stream.pushes) == 3)
    assert [want for _, want in stream.pushes] == [True, False, True]
    assert stream.samples == 3 * 320
    await rec.finish()
