"""router/metered_asr.py: the recognisers the router hands out are metered per utterance, and a failing one is
ejected by its breaker and ordered last."""

from __future__ import annotations

import numpy as np

from adapters.asr.base import RecognitionOptions, RecognitionStream, SpeechRecognizer, Transcript
from adapters.errors import AdapterError
from router import CallContext, Role, Topic
from router.breaker import BreakerState
from router.catalog import ModelEntry, Price, Unit
from router.clock import ManualClock
from router.defaults import build_default_router
from router.profiles import ModelProfile
from tests.router.router_testkit import drain

CTX = CallContext(tenant="t", persona="p", conversation_id="c", session_id="s")


class FakeStream(RecognitionStream):
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.pushed = 0

    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        self.pushed += len(pcm)
        if self.fail:
            raise AdapterError("decoder crashed")
        return Transcript("hel", False)

    async def finish(self) -> Transcript:
        return Transcript("hello", True, audio_s=self.pushed / 16000)


class FakeASR(SpeechRecognizer):
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail

    def stream(self, options: RecognitionOptions | None = None) -> RecognitionStream:
        return FakeStream(self.fail)


def _asr_router(clock: ManualClock):
    router = build_default_router(database_url=None, clock=clock)
    good, bad = FakeASR("good-asr"), FakeASR("bad-asr", fail=True)
    for asr in (bad, good):
        router.catalog.add(
            ModelEntry(
                asr.name,
                Role.SPEECH_RECOGNITION,
                "test",
                (lambda a=asr: a),
                price=Price(Unit.AUDIO_SECOND, 0.0001, 0.0, "test"),
            )
        )
    router.state.custom_profiles[router.mode] = {
        Role.SPEECH_RECOGNITION: ModelProfile(Role.SPEECH_RECOGNITION, "bad-asr", ("good-asr",))
    }
    return router


async def test_recognizers_are_metered_per_utterance(clock: ManualClock) -> None:
    router = _asr_router(clock)
    sub = router.bus.subscribe({Topic.SLM_METRICS})
    recognizers = router.recognizers(CTX)
    assert [r.name for r in recognizers] == ["bad-asr", "good-asr"]
    stream = recognizers[1].stream()
    await stream.push(np.zeros(16000, dtype=np.int16))
    final = await stream.finish()
    assert final.text == "hello"
    m = drain(sub)[0].payload
    assert (m["model"], m["outcome"], m["unit"], m["units_in"]) == ("good-asr", "ok", "audio_second", 1.0)
    assert m["cost"] == 0.0001 and m["ttft_ms"] is not None


async def test_failing_recogniser_is_ejected_and_ordered_last(clock: ManualClock) -> None:
    router = _asr_router(clock)
    for _ in range(router.state.policy.breaker.min_calls):
        stream = router.recognizers(CTX)[0].stream()
        try:
            await stream.push(np.zeros(320, dtype=np.int16))
        except AdapterError:
            await stream.aclose()
    assert router.breakers.get("bad-asr").state is BreakerState.OPEN
    assert [r.name for r in router.recognizers(CTX)] == ["good-asr", "bad-asr"]
