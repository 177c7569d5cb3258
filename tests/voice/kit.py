"""A voice test kit: a real `voice.session.RealtimeSession`, driven in-process, with no uvicorn and no sockets.

The session's router is the real one (`router.compose.compose_router`) over three fakes:

- `ScriptedRecognizer`: each utterance's transcript is the next one scripted (its partials are its first words);
- `ScriptedLLM`: scripted replies, streamed a word per chunk; `hold(after=n)` keeps the next reply waiting after
  `n` words until `release()`, so a test can act while a response is still running;
- `ToneSynthesizer`: deterministic PCM, a 440 Hz tone of `MS_PER_CHAR` ms per character of the sentence.

Time: the session's clock seam (`RealtimeSession(clock=...)`, passed on to the turn controller and each response)
and the router's wall clock are one `router.clock.ManualClock`. Audio arrival, turn metrics and playback follow
it: how much of a reply the client has played is `clock.advance(seconds)` since its first audio, which is what a
barge-in truncates to. Endpointing runs in audio time (20 ms frames), so turns end where the audio says, however
fast it is fed. Nothing else waits on wall time except the bounded waits of `VoiceKit.until`.

    async with voice_session(transcripts=["what time is it"], replies=["It is noon."]) as kit:
        await kit.speak(speech_clip())
        events = await kit.until("response.done")

Speech goes through the real VAD (webrtcvad) and endpointer, so `speak` takes real speech (`speech_clip()`, a
fixture recording); what it says is the recogniser's script, not the recording's words.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from adapters.asr.base import (
    SAMPLE_RATE,
    RecognitionOptions,
    RecognitionStream,
    SpeechRecognizer,
    Transcript,
    WordTiming,
)
from adapters.llm.base import ChatChunk, ChatModel, ChatRequest, ChatUsage
from adapters.tts.base import SpeechSynthesizer
from dsp import OpusEncoder, resample
from dsp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from router.catalog import Catalog, ModelEntry
from router.clock import ManualClock
from router.compose import compose_router
from router.profiles import ModelProfile, ProfileSet
from router.roles import Role
from router.router import ModelRouter
from router.settings import RouterSettings
from tests.helpers import speech
from voice.config import Settings
from voice.limits import SessionLimits
from voice.server import VoiceServer
from voice.session import RealtimeSession

WAIT_S = 10.0  # the most any single wait of the kit takes before it fails the test
MS_PER_CHAR = 10  # ToneSynthesizer: 10 ms of tone per character spoken
TONE_HZ = 440.0
TONE_AMPLITUDE = 8000


# -- the fakes ------------------------------------------------------------------------------------------------

class ScriptedStream(RecognitionStream):
    """One utterance: counts the audio pushed; partials grow a word per half second; the final is the script.
    `speculates`: a speculation (`speculate()` with only silence after) is the final, as faster-whisper's is."""

    def __init__(self, text: str, speculates: bool = False) -> None:
        self.text = text
        self.speculates = speculates
        self.options: RecognitionOptions | None = None  # what the session asked of this utterance
        self.samples = 0
        self.speculated_at: list[int] = []  # samples pushed when the turn said the user fell silent
        self.resumed = 0  # ... and how often the user spoke again after it
        self.finished = False
        self.closed = False
        self._partial = ""

    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        self.samples += len(pcm)
        if not partial or not self.text:
            return None
        words = self.text.split()
        text = " ".join(words[:min(len(words), 1 + self.samples // (SAMPLE_RATE // 2))])
        if text == self._partial:
            return None
        self._partial = text
        return Transcript(text, False, audio_s=self.samples / SAMPLE_RATE)

    def speculate(self) -> None:
        self.speculated_at.append(self.samples)

    def speech_resumed(self) -> None:
        self.resumed += 1

    async def speculation(self) -> Transcript | None:
        await asyncio.sleep(0)  # decoded in the background, a moment after it was asked for
        return self._final() if self.speculates and self.speculated_at else None

    async def finish(self) -> Transcript:
        self.finished = True
        return self._final()

    def _final(self) -> Transcript:
        """The script, its words spread evenly over the audio pushed, each 0.9 sure."""
        words, audio_s = self.text.split(), self.samples / SAMPLE_RATE
        step = audio_s / max(1, len(words))
        timings = tuple(WordTiming(w, round(i * step, 3), round((i + 1) * step, 3), 0.9) for i, w in enumerate(words))
        return Transcript(self.text, True, words=timings, confidence=0.9 if words else None, audio_s=audio_s)

    async def aclose(self) -> None:
        self.closed = True


class ScriptedRecognizer(SpeechRecognizer):
    """Each utterance (each `stream()`) is given the next scripted transcript; an empty one once they run out."""

    name = "scripted-asr"

    def __init__(self, transcripts: Iterable[str] = (), speculates: bool = False) -> None:
        self.transcripts: deque[str] = deque(transcripts)
        self.speculates = speculates
        self.streams: list[ScriptedStream] = []

    def stream(self, options: RecognitionOptions | None = None) -> RecognitionStream:
        stream = ScriptedStream(self.transcripts.popleft() if self.transcripts else "", self.speculates)
        stream.options = options
        self.streams.append(stream)
        return stream


class ScriptedLLM(ChatModel):
    """Answers each request with the next scripted reply (then `default`), one word per chunk, then usage."""

    name = "scripted-llm"

    def __init__(self, replies: Iterable[str] = (), default: str = "OK.") -> None:
        self.replies: deque[str] = deque(replies)
        self.default = default
        self.requests: list[ChatRequest] = []
        self.closed_early = 0  # streams the caller stopped reading before the reply's end (a cancel, a barge-in)
        self._hold_after: int | None = None
        self._hold_count = 0
        self._held = asyncio.Event()
        self._release = asyncio.Event()

    def hold(self, after: int, count: int = 1) -> None:
        """The next `count` replies stop after `after` words until `release()`: responses that are still running."""
        self._hold_after, self._hold_count = after, count
        self._held.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    async def held(self, timeout: float = WAIT_S) -> None:
        """Until the held reply has reached its hold."""
        await asyncio.wait_for(self._held.wait(), timeout)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        text = self.replies.popleft() if self.replies else self.default
        hold_after = self._hold_after
        self._hold_count = max(0, self._hold_count - 1)
        if not self._hold_count:
            self._hold_after = None
        words = text.split(" ")
        done = False
        try:
            for i, word in enumerate(words):
                if i == hold_after:
                    self._held.set()
                    await self._release.wait()
                yield ChatChunk(text=word if i == 0 else " " + word)
            yield ChatChunk(usage=ChatUsage(sum(len(m.content.split()) for m in request.messages), len(words)),
                            finish_reason="stop")
            done = True
        finally:
            self.closed_early += not done


class ToneSynthesizer(SpeechSynthesizer):
    """Deterministic speech: `MS_PER_CHAR` ms of a 440 Hz tone per character, in 20 ms blocks at 16 kHz."""

    name = "tone-tts"
    sample_rate = SAMPLE_RATE

    def __init__(self) -> None:
        self.spoken: list[str] = []

    @staticmethod
    def duration_ms(text: str) -> int:
        return len(text.strip()) * MS_PER_CHAR

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[np.ndarray]:
        if not text.strip():
            return
        self.spoken.append(text)
        n = self.duration_ms(text) * SAMPLE_RATE // 1000
        pcm = (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(n) / SAMPLE_RATE)).astype(np.int16)
        for i in range(0, n, 320):
            yield pcm[i:i + 320]
            await asyncio.sleep(0)  # a real engine yields between blocks; so a cancel lands between them


def kit_router(asr: SpeechRecognizer, llm: ChatModel, tts: SpeechSynthesizer, clock: ManualClock) -> ModelRouter:
    """The real router over the three fakes, one candidate per role, no store."""
    entries = [
        ModelEntry(asr.name, Role.SPEECH_RECOGNITION, "test", lambda: asr),
        ModelEntry(llm.name, Role.DIALOGUE, "test", lambda: llm),
        ModelEntry(tts.name, Role.SPEECH_SYNTHESIS, "test", lambda: tts),
    ]
    profiles = ProfileSet({
        Role.SPEECH_RECOGNITION: ModelProfile(Role.SPEECH_RECOGNITION, asr.name),
        Role.DIALOGUE: ModelProfile(Role.DIALOGUE, llm.name),
        Role.SPEECH_SYNTHESIS: ModelProfile(Role.SPEECH_SYNTHESIS, tts.name),
    })
    return compose_router(Catalog(entries), profiles, settings=RouterSettings(), clock=clock)


# -- audio ----------------------------------------------------------------------------------------------------

def speech_clip(name: str = "goforward.wav", silence_s: float = 0.6) -> np.ndarray:
    """A fixture recording at 16 kHz with `silence_s` of silence after it (enough to end the turn)."""
    pcm, rate = speech(name)
    assert rate == SAMPLE_RATE
    return np.concatenate([pcm, np.zeros(int(silence_s * SAMPLE_RATE), np.int16)])


def encode_input(pcm16k: np.ndarray, fmt: dict[str, Any], chunk_ms: int = 100) -> list[bytes]:
    """16 kHz PCM as the client would send it in `fmt` (a session's input format): one payload per append."""
    kind = fmt["type"]
    if kind == "audio/opus":
        encoder = OpusEncoder()
        pcm48 = resample(pcm16k, SAMPLE_RATE, 48000)
        return encoder.encode(pcm48) + encoder.flush()  # one 20 ms packet per append
    rate = fmt.get("rate", 8000)
    pcm = resample(pcm16k, SAMPLE_RATE, rate)
    step = rate * chunk_ms // 1000
    encode = {"audio/pcmu": ulaw_encode, "audio/pcma": alaw_encode}.get(kind, lambda x: x.astype("<i2").tobytes())
    return [encode(pcm[i:i + step]) for i in range(0, len(pcm), step)]


def decode_output(payload: bytes, fmt: dict[str, Any]) -> np.ndarray:
    """One `response.output_audio.delta` payload in `fmt` back to int16 PCM (not Opus)."""
    kind = fmt["type"]
    if kind == "audio/pcmu":
        return ulaw_decode(payload)
    if kind == "audio/pcma":
        return alaw_decode(payload)
    assert kind == "audio/pcm", kind
    return np.frombuffer(payload, "<i2")


# -- the driver -----------------------------------------------------------------------------------------------

Predicate = Callable[[dict[str, Any]], bool]


class VoiceKit:
    """Client events in through the session's own entry point; server events out as the wire dicts a client
    reads. `events` keeps every event received, in order."""

    def __init__(self, session: RealtimeSession, router: ModelRouter, *, asr: ScriptedRecognizer, llm: ScriptedLLM,
                 tts: ToneSynthesizer, clock: ManualClock) -> None:
        self.session = session
        self.router = router
        self.asr, self.llm, self.tts, self.clock = asr, llm, tts, clock
        self.events: list[dict[str, Any]] = []

    # -- in
    async def send(self, event: dict[str, Any]) -> None:
        """One client event, serialised as it would arrive on the wire."""
        await self.session.handle_text(json.dumps(event))

    async def send_raw(self, raw: str) -> None:
        await self.session.handle_text(raw)

    async def say_text(self, text: str, **response: Any) -> None:
        """A user text item, then `response.create` (with `response` as its parameters, if any)."""
        await self.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
        await self.send({"type": "response.create", **({"response": response} if response else {})})

    async def speak(self, pcm16k: np.ndarray | None = None) -> None:
        """Append audio (default: `speech_clip()`) in the session's current input format."""
        pcm16k = speech_clip() if pcm16k is None else pcm16k
        fmt = self.session.config.audio.input.format.model_dump(mode="json")
        for payload in encode_input(pcm16k, fmt):
            await self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(payload).decode()})

    # -- out
    async def next(self, timeout: float = WAIT_S) -> dict[str, Any]:
        event = await asyncio.wait_for(self.session.next_event(), timeout)
        assert event is not None, "the session closed"
        wire = event.to_wire()
        self.events.append(wire)
        return wire

    async def until(self, match: str | Predicate, timeout: float = WAIT_S) -> list[dict[str, Any]]:
        """Events received from now until the first that matches (a type, or a predicate), that one included."""
        predicate = (lambda e: e["type"] == match) if isinstance(match, str) else match
        got: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                event = await self.next(remaining)
            except TimeoutError:
                raise AssertionError(f"no {match!r} within {timeout} s; got {[e['type'] for e in got][-20:]}") from None
            got.append(event)
            if predicate(event):
                return got

    def received(self) -> list[dict[str, Any]]:
        """Events already waiting, without waiting for more."""
        got = []
        while not self.session.outbox.empty():
            event = self.session.outbox.get_nowait()
            if not hasattr(event, "to_wire"):  # the session's close marker
                continue
            got.append(event.to_wire())
        self.events.extend(got)
        return got

    @staticmethod
    def audio(events: list[dict[str, Any]], response_id: str | None = None) -> bytes:
        """The output audio of `events` (of one response, when given), decoded from base64."""
        return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
                        and (response_id is None or e["response_id"] == response_id))


@asynccontextmanager
async def voice_session(*, transcripts: Iterable[str] = (), replies: Iterable[str] = (),
                        session: dict[str, Any] | None = None, settings: Settings | None = None,
                        clock: ManualClock | None = None, limits: SessionLimits | None = None,
                        policy: tuple = (), speculates: bool = False) -> AsyncIterator[VoiceKit]:
    """A started session over the fakes, configured as the server configures one (`VoiceServer.session_config`:
    its silence window, transcription on with the router's recogniser) with `session` merged over it.
    `speculates`: the recogniser's speculative finals are ready at once, so replies are prefetched."""
    clock = clock or ManualClock(1_000.0)
    asr, llm, tts = ScriptedRecognizer(transcripts, speculates), ScriptedLLM(replies), ToneSynthesizer()
    router = kit_router(asr, llm, tts, clock)
    await router.start(warm_speech=False)
    config = VoiceServer(settings or Settings(warmup=False), router).session_config(session)
    realtime = RealtimeSession(router=router, config=config, clock=clock, limits=limits, policy=policy)
    await realtime.start()
    kit = VoiceKit(realtime, router, asr=asr, llm=llm, tts=tts, clock=clock)
    try:
        yield kit
    finally:
        llm.release()  # a reply still held would otherwise hold the close
        await realtime.aclose()
        await router.aclose()

