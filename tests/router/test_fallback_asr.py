"""router/fallback_asr.py: one recogniser for the role; a stream fails over at open and mid-utterance,
replaying the utterance so far, and every move is reported (the router publishes model.fallback.used)."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.asr.base import RecognitionOptions, RecognitionStream, SpeechRecognizer, Transcript
from adapters.errors import AdapterError
from router import CallContext, Role, Topic
from router.catalog import ModelEntry
from router.defaults import build_default_router
from router.fallback_asr import FallbackRecognizer
from router.profiles import ModelProfile
from tests.router.router_testkit import drain

CTX = CallContext(tenant="t", persona="p", conversation_id="c", session_id="s")
CHUNK = np.ones(1600, np.int16)  # 0.1 s


class _Stream(RecognitionStream):
    def __init__(self, owner: _ASR) -> None:
        self.owner = owner
        self.samples = 0
        self.closed = False

    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        if self.owner.fail_after is not None and self.owner.pushes >= self.owner.fail_after:
            raise AdapterError(f"{self.owner.name} crashed")
        self.owner.pushes += 1
        self.samples += len(pcm)
        return None

    async def finish(self) -> Transcript:
        if self.owner.fail_finish:
            raise AdapterError(f"{self.owner.name} lost the utterance")
        return Transcript(f"{self.owner.name} heard {self.samples}", True, audio_s=self.samples / 16000)

    async def aclose(self) -> None:
        self.closed = True


class _ASR(SpeechRecognizer):
    def __init__(self, name: str, *, refuse: bool = False, fail_after: int | None = None,
                 fail_finish: bool = False) -> None:
        self.name, self.refuse, self.fail_after, self.fail_finish = name, refuse, fail_after, fail_finish
        self.pushes = 0
        self.streams: list[_Stream] = []
        self.options: list[RecognitionOptions | None] = []

    def stream(self, options: RecognitionOptions | None = None) -> RecognitionStream:
        if self.refuse:
            raise AdapterError(f"{self.name} is not loaded")
        self.streams.append(_Stream(self))
        self.options.append(options)
        return self.streams[-1]


async def test_a_candidate_that_refuses_the_stream_is_passed_over():
    moves = []
    rec = FallbackRecognizer([_ASR("a", refuse=True), _ASR("b")], lambda *m: moves.append(m))
    stream = rec.stream()
    await stream.push(CHUNK)
    assert stream.model == "b" and (await stream.finish()).text == "b heard 1600"
    assert moves == [("a", "a is not loaded", "b")]


async def test_a_failure_mid_utterance_replays_the_audio_so_far_into_the_next():
    moves = []
    primary, backup = _ASR("a", fail_after=2), _ASR("b")
    asked = RecognitionOptions(language="en", prompt="card names")
    stream = FallbackRecognizer([primary, backup], lambda *m: moves.append(m)).stream(asked)
    for _ in range(4):  # the third push fails: b gets all three in one replay, then the fourth
        await stream.push(CHUNK)
    final = await stream.finish()
    assert final.text == "b heard 6400"  # nothing the user said was lost
    assert primary.streams[0].closed and stream.model == "b"
    assert moves == [("a", "a crashed", "b")]
    assert primary.options == backup.options == [asked]  # the next candidate recognises it as asked too


async def test_a_failed_finish_moves_on_and_the_next_finishes_the_utterance():
    stream = FallbackRecognizer([_ASR("a", fail_finish=True), _ASR("b")]).stream()
    await stream.push(CHUNK)
    assert (await stream.finish()).text == "b heard 1600"


async def test_when_every_candidate_fails_the_error_reaches_the_caller():
    moves = []
    stream = FallbackRecognizer([_ASR("a", fail_after=0), _ASR("b", fail_after=0)], lambda *m: moves.append(m)).stream()
    with pytest.raises(AdapterError, match="crashed"):
        await stream.push(CHUNK)
    assert moves == [("a", "a crashed", "b"), ("b", "b crashed", None)]


async def test_the_router_hands_out_one_recogniser_and_publishes_each_move():
    router = build_default_router(database_url=None)
    primary, backup = _ASR("flaky-asr", fail_after=1), _ASR("steady-asr")
    for asr in (primary, backup):
        router.catalog.add(ModelEntry(asr.name, Role.SPEECH_RECOGNITION, "test", (lambda a=asr: a)))
    router.state.custom_profiles[router.mode] = {
        Role.SPEECH_RECOGNITION: ModelProfile(Role.SPEECH_RECOGNITION, "flaky-asr", ("steady-asr",))}
    sub = router.bus.subscribe({Topic.FALLBACK_USED})
    stream = router.recognizer(CTX).stream()
    await stream.push(CHUNK)
    await stream.push(CHUNK)
    assert (await stream.finish()).text == "steady-asr heard 3200"
    (event,) = drain(sub)
    assert event.payload["role"] == "speech_recognition"
    assert (event.payload["failed_model"], event.payload["next_model"]) == ("flaky-asr", "steady-asr")
    assert event.payload["conversation_id"] == "c"
    await router.aclose()
