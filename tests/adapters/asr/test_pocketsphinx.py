"""adapters/asr/pocketsphinx.py: partials, timed words and confidence on real speech; a crashed worker fails one
utterance and is replaced; the worker queue serves a stream whose utterance has ended before streams still
speaking, and its backlog counts what is queued."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import numpy as np
import pytest

from adapters.asr.pocketsphinx import PocketsphinxConfig, PocketsphinxRecognizer
from adapters.errors import AdapterError
from tests.doubles import recording_sphinx_worker
from tests.helpers import speech

QUARTER_S = np.zeros(4000, np.int16)  # 0.25 s at 16 kHz: one request each


async def _recording_recognizer(tmp_path) -> tuple[PocketsphinxRecognizer, object]:
    log = tmp_path / "requests.log"
    serve = functools.partial(recording_sphinx_worker.serve, log_path=str(log), delay_s=0.05)
    rec = PocketsphinxRecognizer(PocketsphinxConfig(workers=1, serve=serve, stop_timeout_s=1.0))
    await rec.start()
    return rec, log


async def test_a_finishing_stream_goes_ahead_of_streams_still_speaking(tmp_path):
    rec, log = await _recording_recognizer(tmp_path)
    try:
        speaking = [rec.stream() for _ in range(3)]
        ending, hurried = rec.stream(), rec.stream()
        await ending.push(QUARTER_S)  # both ended utterances have audio with the worker already
        await hurried.push(QUARTER_S)
        log.write_text("")

        pushes = [asyncio.create_task(s.push(QUARTER_S)) for s in speaking]
        late = asyncio.create_task(hurried.push(QUARTER_S))  # queued behind the three, then hurried
        await asyncio.sleep(0)  # every push is queued now; the first is with the process
        assert rec.backlog() == {"pocketsphinx-0": 1.0}
        hurried.expedite()
        ending.expedite()
        final = asyncio.create_task(ending.finish())
        await asyncio.gather(*pushes, late, final)

        order = log.read_text().split("\n")[:-1]
        sids = {id_: s._sid for id_, s in enumerate(speaking)}
        # the first push was already with the process; the hurried push and the final go before the other two
        assert order == [f"push {sids[0]}", f"push {hurried._sid}", f"finish {ending._sid}",
                         f"push {sids[1]}", f"push {sids[2]}"]
        assert rec.backlog() == {"pocketsphinx-0": 0.0}
    finally:
        await rec.aclose()


async def test_without_expedite_requests_are_served_in_arrival_order(tmp_path):
    rec, log = await _recording_recognizer(tmp_path)
    try:
        streams = [rec.stream() for _ in range(3)]
        log.write_text("")
        await asyncio.gather(*(s.push(QUARTER_S) for s in streams))
        assert log.read_text().split() == [x for s in streams for x in ("push", str(s._sid))]
    finally:
        await rec.aclose()


async def test_pocketsphinx_streams_partials_words_and_confidence():
    rec = PocketsphinxRecognizer()
    await rec.start()
    pcm, _ = speech("goforward.wav")
    stream = rec.stream()
    partials = []
    for i in range(0, len(pcm), 320):
        p = await stream.push(pcm[i:i + 320])
        if p is not None:
            partials.append(p)
    final = await stream.finish()
    await rec.aclose()
    assert len(partials) >= 3 and all(not p.is_final for p in partials)
    assert final.is_final and final.text.startswith("go forward")
    assert [w.word for w in final.words] == final.text.split()
    starts = [w.start_s for w in final.words]
    assert starts == sorted(starts) and all(w.end_s > w.start_s for w in final.words)
    assert final.words[-1].end_s <= final.audio_s + 0.01
    assert 0.0 <= final.confidence <= 1.0


async def test_pocketsphinx_worker_crash_fails_one_utterance_then_recovers():
    rec = PocketsphinxRecognizer(PocketsphinxConfig(workers=1))
    await rec.start()
    pcm, _ = speech("goforward.wav")
    try:
        doomed = rec.stream()
        await doomed.push(pcm[:3200])
        rec._workers[0]._process.kill()  # the decoding process dies mid-utterance
        with pytest.raises(AdapterError):
            for i in range(3200, len(pcm), 320):
                await doomed.push(pcm[i:i + 320])
            await doomed.finish()
        fresh = rec.stream()  # a new worker is started for the next utterance
        for i in range(0, len(pcm), 320):
            await fresh.push(pcm[i:i + 320])
        assert (await fresh.finish()).text.startswith("go forward")
    finally:
        await rec.aclose()


async def test_a_stream_cancelled_while_the_workers_start_orphans_no_process():
    """A client that left mid-utterance cancelled the workers' start half-way: two processes per such session
    were left running, unused and never reaped, and the next utterance started two more."""
    rec = PocketsphinxRecognizer(PocketsphinxConfig(workers=1))
    pcm, _ = speech("goforward.wav")
    try:
        doomed = rec.stream()
        push = asyncio.create_task(doomed.push(pcm[:3200]))  # the first utterance starts the workers
        await asyncio.sleep(0.05)  # starting takes a few hundred ms: cancel in the middle of it
        push.cancel()
        await asyncio.gather(push, return_exceptions=True)
        await doomed.aclose()
        fresh = rec.stream()
        for i in range(0, len(pcm), 320):
            await fresh.push(pcm[i:i + 320])
        assert (await fresh.finish()).text.startswith("go forward")
        assert [w.label for w in rec._workers] == ["pocketsphinx-0"]  # the one started first, never a second
    finally:
        await rec.aclose()


async def test_a_killed_worker_is_reaped_not_left_a_zombie():
    rec = PocketsphinxRecognizer(PocketsphinxConfig(workers=1))
    await rec.start()
    try:
        worker = rec._workers[0]
        pid = worker._process.pid
        worker.kill("test")
        proc = Path(f"/proc/{pid}")
        async with asyncio.timeout(10):  # collected by the worker's own polling; reading exitcode here would reap it
            while proc.exists():
                await asyncio.sleep(0.05)
    finally:
        await rec.aclose()
