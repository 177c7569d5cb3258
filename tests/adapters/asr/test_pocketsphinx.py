"""adapters/asr/pocketsphinx.py: the worker queue serves a stream whose utterance has ended before streams
still speaking, and its backlog counts what is queued."""

from __future__ import annotations

import asyncio
import functools

import numpy as np

from adapters.asr.pocketsphinx import PocketsphinxConfig, PocketsphinxRecognizer
from tests.doubles import recording_sphinx_worker

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
