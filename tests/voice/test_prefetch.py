"""voice/prefetch.py, as the turn loop uses it: the reply is asked for once the speculative final is decoded, before
the endpoint; nothing of it is sent until the turn has ended, and it is dropped (its request closed) when the user
speaks on, the context changes first, or the session does not want it. Driven through the voice test kit."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np

from router.catalog import Price, Unit
from tests.voice.kit import speech_clip, voice_session

REPLY = "The lights are on."
ALWAYS = {"somagent": {"prefetch_reply": True}}  # the kit's dialogue model has no price: by default, no prefetch


def silence(ms: int) -> np.ndarray:
    return np.zeros(16 * ms, np.int16)


def speech(ms_after: int, start_ms: int = 0) -> np.ndarray:
    """The fixture's speech (its trailing 0.44 s of quiet cut off), then `ms_after` of silence: past 40 ms
    (voice/turn.py SPECULATE_MS) the final is decoded ahead, at 300 the turn ends. From `start_ms` 500 it is one
    run of speech, with no pause."""
    return np.concatenate([speech_clip(silence_s=0.0)[16 * start_ms : 16 * 2360], silence(ms_after)])


async def until_requests(kit, n: int) -> None:
    for _ in range(500):  # bounded: 5 s
        if len(kit.llm.requests) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(kit.llm.requests)} dialogue requests, not {n}")


async def test_the_reply_is_asked_for_before_the_turn_ends_and_sent_after_it():
    async with voice_session(transcripts=["turn on the lights"], replies=[REPLY] * 4, speculates=True,
                             session={"somagent": {"events": True, "prefetch_reply": True}}) as kit:
        await kit.speak(speech(200))  # silent long enough to speculate, not to end the turn
        await until_requests(kit, 1)
        before = [e["type"] for e in kit.received()]
        assert "input_audio_buffer.speech_stopped" not in before
        assert not [t for t in before if t.startswith("response.")]  # held: nothing of the reply is out yet
        assert kit.llm.requests[-1].messages[-1].content == "turn on the lights"

        await kit.speak(silence(300))
        events = await kit.until("response.done")
        metrics = await kit.until("somagent.turn.metrics")
    turns = kit.session.turns
    assert turns.prefetches - turns.prefetches_dropped == 1
    assert len(kit.llm.requests) == turns.prefetches  # the response asked nothing more: it took the prefetched reply
    assert events[-1]["response"]["status"] == "completed"
    transcript = [e for e in events if e["type"] == "response.output_audio_transcript.done"]
    assert transcript[0]["transcript"] == REPLY and kit.tts.spoken == [REPLY]
    assert metrics[-1]["reply_prefetched"] is True


async def test_speech_that_comes_back_drops_the_prefetched_reply():
    async with voice_session(transcripts=["turn on the lights"], replies=[REPLY] * 4, speculates=True,
                             session=ALWAYS) as kit:
        kit.llm.hold(after=1)  # the first reply stays under way until it is dropped
        await kit.speak(speech(200))
        await until_requests(kit, 1)
        await kit.llm.held()
        dropped = kit.session.turns.prefetches_dropped
        await kit.speak(speech(600, start_ms=500))  # the user goes on: the same utterance (its words the script's)
        events = await kit.until("response.done")
    turns = kit.session.turns
    assert turns.prefetches_dropped > dropped and kit.llm.closed_early >= 1  # its stream was closed
    assert events[-1]["response"]["status"] == "completed"
    assert [e for e in events if e["type"] == "response.output_audio_transcript.done"][0]["transcript"] == REPLY
    kinds = [e["type"] for e in events]
    assert kinds.count("input_audio_buffer.committed") == 1 and kinds.count("response.created") == 1


async def test_a_context_changed_before_the_response_is_asked_again():
    async with voice_session(transcripts=["turn on the lights"], replies=[REPLY] * 4, speculates=True,
                             session=ALWAYS) as kit:
        await kit.speak(speech(200))
        await until_requests(kit, 1)
        await kit.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}})
        await kit.speak(silence(300))
        events = await kit.until("response.done")
    request = kit.llm.requests[-1]
    assert request.messages[0].content == "Be brief." and request.messages[-1].content == "turn on the lights"
    turns = kit.session.turns
    assert turns.prefetches_dropped >= 1 and len(kit.llm.requests) == turns.prefetches + 1  # asked again
    assert events[-1]["response"]["status"] == "completed"
    assert kit.session.turns.metrics[-1].prefetched is False


async def test_by_default_only_a_model_that_costs_nothing_is_asked_ahead():
    for price, asked in ((None, 0), (Price(Unit.TOKENS_1K, 0.0005, 0.0015), 0), (Price(Unit.TOKENS_1K, 0.0, 0.0), 1)):
        async with voice_session(transcripts=["turn on the lights"], replies=[REPLY] * 4, speculates=True) as kit:
            catalog = kit.router.catalog
            catalog.add(replace(catalog.entry(kit.llm.name), price=price))  # unknown, billed, local
            await kit.speak(speech(200, start_ms=500))
            if asked:
                await until_requests(kit, 1)
            else:
                await asyncio.sleep(0.05)
            assert len(kit.llm.requests) == kit.session.turns.prefetches == asked, price
            await kit.speak(silence(300))
            await kit.until("response.done")


async def test_no_prefetch_when_the_session_turns_it_off_or_wants_no_response():
    for session in ({"somagent": {"prefetch_reply": False}},
                    {"somagent": {"prefetch_reply": True},
                     "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": False}}}}):
        async with voice_session(transcripts=["turn on the lights"], replies=[REPLY], speculates=True,
                                 session=session) as kit:
            await kit.speak(speech(200))
            await asyncio.sleep(0.05)
            assert kit.session.turns.prefetches == 0 and not kit.llm.requests
            await kit.speak(silence(300))
            await kit.until("conversation.item.input_audio_transcription.completed")
            assert kit.asr.streams[-1].speculated_at  # the recogniser still decoded its final ahead
