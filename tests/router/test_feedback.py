"""router/feedback.py: live turns feed the quality aggregates and conversation.events: a recogniser's confidence,
sampled DNSMOS of synthesised speech (scored off the loop), each turn's latency per stage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from adapters.tts.base import SpeechSynthesizer
from router.catalog import ModelEntry, Price, Unit
from router.context import CallContext
from router.events import Topic
from router.profiles import ModelProfile
from router.roles import Role
from tests.router.router_testkit import chat_entry, drain, make_router, with_settings

SPEECH = Path(__file__).resolve().parents[2] / "fixtures" / "audio" / "speech" / "goforward.wav"
LIVE = CallContext(tenant="t1", conversation_id="conv-1", session_id="sess-1")


class RecordedVoice(SpeechSynthesizer):
    """Speaks every sentence with the same real recording (what DNSMOS scores is real speech)."""

    def __init__(self) -> None:
        pcm, self.sample_rate = sf.read(SPEECH, dtype="int16")
        self.pcm = pcm

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[np.ndarray]:
        for i in range(0, len(self.pcm), 4000):
            yield self.pcm[i:i + 4000]


@pytest.fixture
def router(clock):  # noqa: ANN001
    tts = RecordedVoice()
    entries = [chat_entry("m"), ModelEntry("voice", Role.SPEECH_SYNTHESIS, "test", lambda: tts,
                                           price=Price(Unit.CHARACTER, 0.0, 0.0, "test"), adapter="recorded")]
    return make_router(entries, ("m",), clock=clock, settings=with_settings(dnsmos_sample_every=2),
                       extra={Role.SPEECH_SYNTHESIS: ModelProfile(Role.SPEECH_SYNTHESIS, "voice")})


async def speak(router, ctx: CallContext = LIVE) -> None:  # noqa: ANN001
    async for _ in router.synthesize("go forward ten meters", ctx):
        pass


async def test_a_sampled_sentence_is_scored_off_the_loop_into_the_aggregates(router):  # noqa: ANN001
    sub = router.bus.subscribe({Topic.CONVERSATION})
    for _ in range(3):  # one in two is sampled: the first and the third
        await speak(router)
        for _ in range(200):  # bounded: the scorer's thread reports back through the loop
            if not router.feedback._in_flight:
                break
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)
    events = [e.payload for e in drain(sub)]
    scored = [e for e in events if e["event"] == "synthesis.quality"]
    assert 1 <= len(scored) <= 2 and scored[0]["model"] == "voice" and scored[0]["conversation_id"] == "conv-1"
    assert 2.0 < scored[0]["dnsmos"]["ovrl_mos"] < 5.0
    live = router.state.quality.live[(Role.SPEECH_SYNTHESIS, "voice")]
    assert live.n == len(scored) and live.mean == pytest.approx((scored[0]["dnsmos"]["ovrl_mos"] - 1) / 4, abs=1e-3)
    router.rescore(Role.SPEECH_SYNTHESIS)
    prior = router.catalog.entry("voice").quality
    assert router.scores_for(Role.SPEECH_SYNTHESIS).by_model["voice"].stats.quality == pytest.approx(
        router.state.quality.quality(Role.SPEECH_SYNTHESIS, "voice", prior))  # the scores follow it


async def test_capsule_calls_and_short_sentences_are_not_sampled(router):  # noqa: ANN001
    feedback = router.feedback
    assert not feedback.wants("voice", CallContext(source="capsule"))
    feedback.synthesized("voice", LIVE, np.zeros(8000, np.int16), 16000)  # half a second: too short to judge
    assert not feedback._in_flight


def test_a_transcript_confidence_is_the_wer_proxy_and_turn_latency_is_published(router):  # noqa: ANN001
    sub = router.bus.subscribe({Topic.CONVERSATION})
    router.feedback.transcribed("asr-a", 0.9, LIVE, "item-1")
    router.feedback.transcribed("asr-a", None, LIVE, "item-2")  # no confidence: nothing to learn
    router.feedback.turn(LIVE, "item-1", {"voice_to_voice_ms": 640.0}, "asr-a")
    events = [e.payload for e in drain(sub)]
    assert [e["event"] for e in events] == ["transcription.quality", "turn.latency"]
    assert events[0]["wer_proxy"] == pytest.approx(0.1) and events[0]["tenant"] == "t1"
    assert events[1]["stages_ms"] == {"voice_to_voice_ms": 640.0}
    assert router.state.quality.live[(Role.SPEECH_RECOGNITION, "asr-a")].n == 1
