"""The turn state machine: who is speaking, when the user's turn ends, when the agent answers or yields.

Audio arrives as 16 kHz frames. The user side is LISTENING or SPEAKING (server VAD) or COLLECTING
(manual commits); the agent side has at most one live response. Ending a user turn hands the
recognition stream to a single finaliser task, so transcripts and responses keep their order while
new audio (and a barge-in) is still heard.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from adapters.aio import TaskSet
from adapters.asr.base import RecognitionOptions, Transcript
from adapters.errors import AdapterError
from dsp import FRAME_SAMPLES, StreamingFeatures, UtteranceAnalytics
from dsp.embedding import UtteranceEmbedding
from dsp.silero import FrameVad, make_frame_vad
from router import CallContext, ModelRouter, Role
from voice import events as ev
from voice.client_events import ResponseParams
from voice.codec import OutputEncoder
from voice.conversation import ContextWindow, Conversation, Item
from voice.echo import EchoGate
from voice.endpointer import FRAME_MS, Endpointer, SpeechStarted, SpeechStopped
from voice.ids import new_id
from voice.metrics import TurnMetrics
from voice.prefetch import PrefetchedReply
from voice.recognition import BackgroundRecognition
from voice.response import ResponseOptions, ResponseRun, chat_request, dialogue_role
from voice.session_config import SessionConfig
from voice.tools import tool_choice, tool_specs

log = logging.getLogger(__name__)

Emit = Callable[[ev.ServerEvent], None]
MIN_COMMIT_MS = 100
# Silence after which the final may be decoded ahead of the endpoint (and the reply asked for with it). 40 ms, not
# 100: Whisper's final is then ready ~130 ms later, well before the 300 ms endpoint, for the same WER and decodes
# (speculation pauses partials: 74 decodes against 72 over the 9 fixtures) and ~100 ms sooner a reply.
SPECULATE_MS = 40
FEATURE_WARMUP_FRAMES = 2  # 40 ms before an onset: more than the features' 512-sample (32 ms) analysis window
MAX_METRICS = 200
TRUNCATE_SLACK_MS = 100  # a client's playback clock may run this far past the audio generated; more is an error


class StableWords:
    """The words of an utterance's transcript as append-only deltas (`input_audio_transcription.delta`) while
    the user speaks: a word is sent once `agree` partials in a row agree on it and everything before it (a
    partial's tail still changes), and the final sends what is left. A final that disagrees with words already
    sent sends nothing more: the `completed` event carries the transcript, as the protocol says.

    `transcription.delay` picks `agree`: "minimal"/"low" send what one partial says (soonest, may need the
    completed event's correction), "medium" (the default) waits for two, "high" for three, "xhigh" sends
    words only with the final (`agree` 0)."""

    AGREE = {"minimal": 1, "low": 1, "medium": 2, "high": 3, "xhigh": 0}

    def __init__(self, agree: int = 2) -> None:
        self.agree = agree
        self.sent: list[str] = []
        self._recent: list[list[str]] = []

    @classmethod
    def for_delay(cls, delay: str | None) -> StableWords:
        return cls(cls.AGREE.get(delay or "medium", 2))

    def partial(self, text: str) -> str:
        if self.agree <= 0:
            return ""
        self._recent = [*self._recent, text.split()][-self.agree:]
        if len(self._recent) < self.agree:
            return ""
        agreed = 0
        for column in zip(*self._recent, strict=False):
            if any(w != column[0] for w in column):
                break
            agreed += 1
        return self._extend(self._recent[-1][:agreed])

    def final(self, text: str) -> str:
        return self._extend(text.split())

    def _extend(self, words: list[str]) -> str:
        if len(words) <= len(self.sent) or words[:len(self.sent)] != self.sent:
            return ""
        new = words[len(self.sent):]
        delta = (" " if self.sent else "") + " ".join(new)
        self.sent = words
        return delta


def word_logprobs(final: Transcript | None) -> list[dict[str, Any]]:
    """`include: ["item.input_audio_transcription.logprobs"]`: one entry per recognised word (our recognisers
    score words, not tokens), its log probability from the recogniser's confidence; words without one are left
    out. Tokens carry their leading space, as OpenAI's do."""
    out: list[dict[str, Any]] = []
    for i, w in enumerate(final.words if final is not None else ()):
        if w.confidence is None:
            continue
        token = w.word if i == 0 else " " + w.word
        out.append({"token": token, "logprob": round(math.log(max(float(w.confidence), 1e-10)), 4),
                    "bytes": list(token.encode())})
    return out


class UserState(StrEnum):
    LISTENING = "listening"  # server VAD, no speech
    SPEAKING = "speaking"  # server VAD, inside an utterance
    COLLECTING = "collecting"  # no turn detection: audio accumulates until the client commits


@dataclass
class _Turn:
    item: Item
    stream: BackgroundRecognition | None
    asr_model: str | None
    metrics: TurnMetrics
    create_response: bool
    previous_item_id: str | None
    wants_asr: bool = True  # False: nothing asked for a transcript, so none was made
    audio_start_ms: int | None = None  # where the item's audio starts in the input buffer (server VAD)
    deltas: StableWords | None = None  # the transcript words sent while the user spoke
    vector: np.ndarray | None = None  # the utterance's embedding (dsp/embedding.py), for the audio vault
    envelope: np.ndarray | None = None
    prefetched: PrefetchedReply | None = None  # its reply, asked for before the endpoint


@dataclass(frozen=True)
class Utterance:
    """What a finished user utterance leaves for the audio vault: derived data only, never audio."""

    item_id: str
    vector: np.ndarray
    envelope: np.ndarray
    analytics: dict[str, Any]
    transcript: str | None


class TurnController:
    def __init__(self, *, emit: Emit, router: ModelRouter, ctx: CallContext, conversation: Conversation,
                 config: Callable[[], SessionConfig], clock: Callable[[], float] = time.monotonic,
                 max_responses: int = 4, max_buffer_ms: float = 120_000.0) -> None:
        self._emit = emit
        self._router = router
        self.ctx = ctx
        self._conversation = conversation
        self._config = config
        self._clock = clock
        self._vad: FrameVad = make_frame_vad("webrtc")
        self._features = StreamingFeatures()  # O(n_fft) state; per-utterance analytics keep sums only
        self._analytics = UtteranceAnalytics()
        self._embedding = UtteranceEmbedding()  # fed the same frames: the utterance's vector
        self.on_utterance: Callable[[Utterance], None] | None = None  # the audio vault's intake, when there is one
        self.on_analytics: Callable[[str, dict[str, Any]], None] | None = None  # each committed utterance's (policy)
        self._endpointer: Endpointer | None = None
        self._carry = np.zeros(0, dtype=np.int16)
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=1000)  # (frame end ms, arrival time)
        self._stream: BackgroundRecognition | None = None
        self._deltas: StableWords | None = None
        self._asr_model: str | None = None
        self._wants_asr = True
        self._finishing: BackgroundRecognition | None = None  # the committed utterance being finalised
        self._item_id: str | None = None
        self._utterance_start_ms: int | None = None
        self._speculating = False  # this utterance's recogniser was told the user fell silent
        self._prefetching: asyncio.Task | None = None  # waits for the speculative final, then asks for the reply
        self._prefetched: PrefetchedReply | None = None  # the reply asked for before this utterance ended
        self.prefetches = 0  # replies asked for before the endpoint ...
        self.prefetches_dropped = 0  # ... and dropped: speech came back, or no response followed
        self._buffer_ms = 0.0
        self._last_audio_at: float | None = None
        self._turns: asyncio.Queue[_Turn] = asyncio.Queue()
        self._finaliser: asyncio.Task | None = None
        self.response: ResponseRun | None = None  # the conversation's live (or last) response
        self._runs: set[ResponseRun] = set()  # every live response, out-of-band ones included
        self.max_responses = max_responses  # ... at most this many (voice/limits.py)
        self.max_buffer_ms = max_buffer_ms  # one utterance's audio, at most (voice/limits.py)
        self._buffer_full = False  # the client was told that audio past the limit is dropped
        # Over WebRTC the server knows what played and cuts the item at a barge-in itself; a WebSocket client
        # plays the audio and truncates the item to what it played (`conversation.item.truncate`), as OpenAI has it.
        self.server_truncation = False
        self._tasks = TaskSet()  # the turn finaliser and the per-response metrics reporters
        self.metrics: deque[TurnMetrics] = deque(maxlen=MAX_METRICS)
        self.user_turns = 0
        # echo gate: an onset during agent playback interrupts only when clearly louder than the echo
        self.echo = EchoGate()
        self.barge_ins = 0  # onsets during playback that interrupted the agent
        self.false_barge_ins = 0  # onsets during playback the echo gate refused (taken for the agent's echo)
        self.apply_config()

    # -- configuration ------------------------------------------------------------------------
    def apply_config(self) -> None:
        cfg = self._config()
        td = cfg.audio.input.turn_detection
        if td is None:
            self._endpointer = None
            return
        threshold = getattr(td, "threshold", 0.5)
        kind = getattr(td, "vad", "webrtc")
        if self._vad.name != kind:
            self._vad = make_frame_vad(kind, threshold)
        self._vad.set_threshold(threshold)
        padding = getattr(td, "prefix_padding_ms", 300)
        silence = cfg.silence_ms() or 300
        if self._endpointer is None:
            self._endpointer = Endpointer(prefix_padding_ms=padding, silence_duration_ms=silence)
        else:
            self._endpointer.reconfigure(prefix_padding_ms=padding, silence_duration_ms=silence)

    def asr_backlog_s(self) -> float:
        """Audio of this session not yet recognised: the open utterance's and the one being finalised."""
        return sum(s.backlog_s for s in (self._stream, self._finishing) if s is not None)

    @property
    def user_state(self) -> UserState:
        if self._endpointer is None:
            return UserState.COLLECTING
        return UserState.SPEAKING if self._endpointer.in_speech else UserState.LISTENING

    def _turn_detection(self) -> Any:
        return self._config().audio.input.turn_detection

    # -- audio in -----------------------------------------------------------------------------
    async def feed(self, pcm: np.ndarray, arrived_at: float) -> None:
        """Process 16 kHz audio: VAD and endpointing per 20 ms frame, recognition while speech lasts."""
        self._last_audio_at = arrived_at
        if len(pcm) == FRAME_SAMPLES and not len(self._carry):  # a 20 ms append lands as exactly one frame
            await self._on_frame(pcm, arrived_at)
            return
        buf = np.concatenate([self._carry, pcm]) if len(self._carry) else pcm
        n = len(buf) // FRAME_SAMPLES
        self._carry = buf[n * FRAME_SAMPLES:].copy()
        for i in range(n):
            frame = buf[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]
            await self._on_frame(frame, arrived_at)

    async def _on_frame(self, frame: np.ndarray, arrived_at: float) -> None:
        ep = self._endpointer
        if self._buffer_ms >= self.max_buffer_ms and self._item_id is not None:
            if ep is None:  # manual turns: what is past the limit is dropped until the client commits or clears
                if not self._buffer_full:
                    self._buffer_full = True
                    self._emit(ev.Error.of("input_audio_buffer_full", f"the input audio buffer holds its limit of "
                                           f"{self.max_buffer_ms / 1000:g} s; audio past it is dropped until "
                                           "input_audio_buffer.commit or .clear"))
                return
            if ep.in_speech:  # an utterance that never pauses (music, a stuck microphone) ends at the limit
                ep.reset()
                await self._speech_stopped(SpeechStopped(audio_end_ms=round(ep.now_ms)))
        self._buffer_ms += FRAME_MS
        if ep is None:  # manual turns: everything goes to the recogniser
            if self._item_id is None:
                self._open_stream()
            self._add_features(self._features.push(frame))  # the same 16 kHz frame, never a second copy
            self._push(frame)
            return
        voiced = self._vad.is_speech(frame)
        was_speaking = ep.in_speech
        if not was_speaking and self.response is not None and self.response.is_audible():
            self.echo.observe(frame)  # echo gate: agent audible, user silent: this is echo level
        event = ep.push(frame, voiced)
        self._arrivals.append((ep.now_ms, arrived_at))
        if ep.in_speech:
            # features run only while the user speaks (per-utterance analytics is all they feed): at the onset
            # the frames just before it refill the analysis window, so the first ones come out as if the stream
            # had run all along
            if isinstance(event, SpeechStarted):
                self._features.reset()
                for warm in event.prefix[-1 - FEATURE_WARMUP_FRAMES:-1]:
                    self._features.push(warm)
            self._add_features(self._features.push(frame))
        if isinstance(event, SpeechStarted):
            await self._speech_started(event)
        elif isinstance(event, SpeechStopped):
            await self._speech_stopped(event)
        elif was_speaking:
            self._push(frame, voiced)
            if self._stream is not None:
                self._speculation(ep, voiced)
            # echo gate: a held onset whose speech proves clearly louder than the echo is a barge-in after all
            if self.echo.pending and self.echo.confirm(frame) and self.response is not None \
                    and self.response.is_audible():
                self.false_barge_ins -= 1
                self.barge_ins += 1
                await self.interrupt(reason="turn_detected")

    def _add_features(self, frames: Any) -> None:
        self._analytics.add(frames)
        if self.on_utterance is not None:
            self._embedding.add(frames)

    def _speculation(self, ep: Endpointer, voiced: bool) -> None:
        """After SPECULATE_MS of silence the recogniser may start its final (the endpoint follows unless speech
        comes back, and then it is told so): a pause between words costs no decode, and a final that takes longer
        than the silence window is that much nearer when the turn ends."""
        assert self._stream is not None
        if voiced:
            if self._speculating:
                self._speculating = False
                self._stream.speech_resumed()
                self._drop_prefetch()
        elif not self._speculating and ep.silent_frames >= max(1, min(SPECULATE_MS // FRAME_MS,
                                                                       ep.silence_frames - 1)):
            self._speculating = True
            self._stream.speculate()
            if self._may_prefetch():
                self._prefetching = self._tasks.create_task(self._prefetch(self._stream, self._item_id),
                                                            name="reply-prefetch")

    # -- the reply asked for before the endpoint (voice/prefetch.py) ----------------------------
    def _may_prefetch(self) -> bool:
        """Only where this utterance's end will start a response at once, of the conversation as it is now: server
        VAD creates it, no response is live or waiting to be (its reply would change the context), and a response
        slot is free."""
        cfg = self._config()
        td = cfg.audio.input.turn_detection
        if td is None or not td.create_response or (cfg.somagent is not None and cfg.somagent.prefetch_reply is False):
            return False
        if self.echo.pending or not self._turns.empty() or self._finishing is not None:
            return False
        return not self.responding and len(self._runs) < self.max_responses

    async def _prefetch(self, stream: BackgroundRecognition, item_id: str | None) -> None:
        """Once the speculative final is decoded (only silence so far), ask for the reply the turn will ask for:
        the same request `voice/response.py` makes once the item holds that text."""
        final = await stream.speculation()
        if final is None or not final.text or self._stream is not stream or not self._speculating:
            return
        options = self.default_options()
        user = Item(id=item_id or "", role="user", kind="input_audio", text=final.text)
        then = [user] if options.tools else [user, Item(id="", role="assistant", kind="output_audio", text="")]
        request = chat_request(options, self._conversation, then)
        role = dialogue_role(self._router, request, self.ctx)
        wanted = cfg.somagent.prefetch_reply if (cfg := self._config()).somagent is not None else None
        if wanted is None and not self._costs_nothing(role):
            return
        self._prefetched = PrefetchedReply(self._router, role, request, self.ctx)
        self.prefetches += 1

    def _costs_nothing(self, role: Role) -> bool:
        """The model the router would ask first is priced at nothing (a local one): a reply asked for and dropped
        costs it nothing but a moment of its time."""
        try:
            first = self._router.candidates(role, self.ctx)[0]
        except (LookupError, IndexError):
            return False
        entry = self._router.catalog.get(first)
        price = entry.price if entry is not None else None
        return price is not None and price.input == 0 and price.output == 0

    def _drop_prefetch(self) -> None:
        """Speech came back (or the utterance is gone): the reply asked for is not the one the turn will want."""
        if self._prefetching is not None:
            self._prefetching.cancel()
            self._prefetching = None
        if self._prefetched is not None:
            self._close_prefetched(self._prefetched)
            self._prefetched = None

    def _close_prefetched(self, reply: PrefetchedReply) -> None:
        self.prefetches_dropped += 1
        self._tasks.create_task(reply.aclose(), name="reply-prefetch-close")

    def _needs_recognition(self) -> bool:
        """A transcript is wanted, or a response may follow this utterance (which needs its text).

        Server VAD with `create_response: false` and `transcription: null` needs none: VAD, endpointing
        and features still run, and no recogniser is opened (a client-created response then sees no text).
        """
        cfg = self._config().audio.input
        td = cfg.turn_detection
        return cfg.transcription is not None or td is None or bool(td.create_response)

    def _recognition_options(self) -> RecognitionOptions:
        """`audio.input.transcription.language` and `prompt`, for the recogniser to honour where it can."""
        t = self._config().audio.input.transcription
        if t is None:
            return RecognitionOptions()
        return RecognitionOptions(language=t.recognition_language(), prompt=t.recognition_prompt())

    def _open_stream(self) -> None:
        self._item_id = item_id = new_id("item")
        self._stream, self._asr_model, self._deltas = None, None, None
        self._wants_asr = self._needs_recognition()
        if not self._wants_asr:
            return
        try:
            stream = self._router.recognizer(self.ctx).stream(self._recognition_options())  # fails over inside
        except AdapterError as exc:
            log.warning("no recogniser for this utterance: %s", exc)
            return
        t = self._config().audio.input.transcription
        self._deltas = deltas = StableWords.for_delay(t.delay if t is not None else None)

        def on_partial(partial: Any) -> None:
            self._emit(ev.TranscriptionPartial(item_id=item_id, text=partial.text,
                                               audio_ms=round(partial.audio_s * 1000)))
            if self._config().audio.input.transcription is not None and (delta := deltas.partial(partial.text)):
                self._emit(ev.InputTranscriptionDelta(item_id=item_id, content_index=0, delta=delta))

        self._stream = BackgroundRecognition(
            stream,
            on_partial,
            lambda lagging, backlog_s: self._emit(ev.AsrLagging(
                item_id=item_id, lagging=lagging, backlog_ms=round(backlog_s * 1000))),
        )
        self._asr_model = stream.model

    def _push(self, frame: np.ndarray, voiced: bool = True) -> None:
        if self._stream is not None:
            self._stream.push(frame, voiced=voiced)

    async def _speech_started(self, event: SpeechStarted) -> None:
        self._open_stream()
        self._utterance_start_ms = event.audio_start_ms
        self._buffer_ms = len(event.prefix) * FRAME_MS  # the utterance's audio, padding included
        self._emit(ev.InputAudioBufferSpeechStarted(audio_start_ms=event.audio_start_ms, item_id=self._item_id))
        td = self._turn_detection()
        if td is not None and td.interrupt_response:
            # echo gate: during playback, an onset no louder than the echo is not a barge-in
            audible = self.response is not None and self.response.is_audible()
            if audible and not self.echo.allow_barge_in(event.prefix[-self._endpointer.start_frames:]):
                self.false_barge_ins += 1  # held: _on_frame lets it through if the speech grows clearly louder
            else:
                self.echo.pending = False
                self.barge_ins += int(audible)
                await self.interrupt(reason="turn_detected")
        for frame in event.prefix:
            self._push(frame)

    async def _speech_stopped(self, event: SpeechStopped) -> None:
        self._emit(ev.InputAudioBufferSpeechStopped(audio_end_ms=event.audio_end_ms, item_id=self._item_id))
        if self.echo.pending:  # the whole utterance stayed at the echo level: the agent heard itself
            await self._drop_echo(event)
            return
        metrics = TurnMetrics(item_id=self._item_id or "", speech_end=self._arrival_of(event.audio_end_ms),
                              end_of_turn=self._clock())
        td = self._turn_detection()
        self._commit(metrics, create_response=bool(td is not None and td.create_response))

    async def _drop_echo(self, event: SpeechStopped) -> None:
        """Not a user turn: nothing is committed, transcribed or answered."""
        self.echo.pending = False
        self._emit(ev.EchoSuppressed(item_id=self._item_id, audio_end_ms=event.audio_end_ms,
                                     values=dict(self.echo.last_decision or {})))
        await self._discard_utterance()

    def _arrival_of(self, audio_ms: int) -> float | None:
        for end_ms, arrived in reversed(self._arrivals):
            if end_ms <= audio_ms:
                return arrived
        return None

    # -- commits ------------------------------------------------------------------------------
    def commit(self) -> str | None:
        """A client's `input_audio_buffer.commit`; returns an error message when there is nothing to commit."""
        if self._item_id is None or self._buffer_ms < MIN_COMMIT_MS:
            return (f"buffer too small: expected at least {MIN_COMMIT_MS} ms of audio, "
                    f"but the buffer holds {self._buffer_ms:.0f} ms")
        metrics = TurnMetrics(item_id=self._item_id or "", speech_end=self._last_audio_at, end_of_turn=self._clock())
        if self._endpointer is not None:
            self._endpointer.reset()
        td = self._turn_detection()
        self._commit(metrics, create_response=bool(td is not None and td.create_response))
        return None

    def _commit(self, metrics: TurnMetrics, *, create_response: bool) -> None:
        item = Item(id=self._item_id or new_id("item"), role="user", kind="input_audio", text=None)
        metrics.item_id = item.id
        metrics.audio = self._analytics.summary().to_dict()
        self._emit(ev.AudioFeatures(item_id=item.id, values=metrics.audio))
        if self.on_analytics is not None:
            self.on_analytics(item.id, metrics.audio)
        prev = self._conversation.add(item)
        self._emit(ev.InputAudioBufferCommitted(previous_item_id=prev, item_id=item.id))
        self._emit(ev.ConversationItemAdded(previous_item_id=prev, item=item.wire()))
        vector = self._embedding.vector() if self.on_utterance is not None else None
        # the reply asked for goes with the turn; one still waiting for its transcript is cancelled with the
        # utterance (_forget_utterance, below)
        prefetched, self._prefetched = self._prefetched, None
        self._turns.put_nowait(_Turn(item, self._stream, self._asr_model, metrics, create_response, prev,
                                     self._wants_asr, self._utterance_start_ms, self._deltas, vector,
                                     self._embedding.envelope() if vector is not None else None, prefetched))
        self._utterance_start_ms = None
        self._forget_utterance()  # the stream now belongs to the turn
        self.user_turns += 1
        if self._finaliser is None or self._finaliser.done():
            self._finaliser = self._tasks.create_task(self._finalise_turns(), name="turn-finaliser")

    def _forget_utterance(self) -> None:
        """The next utterance starts from nothing: no stream, no item, an empty buffer and analytics."""
        self._drop_prefetch()
        self._stream, self._item_id, self._buffer_ms, self._deltas = None, None, 0.0, None
        self._buffer_full = False
        self._speculating = False
        self._analytics.reset()
        self._embedding.reset()

    async def _discard_utterance(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
        self._forget_utterance()

    async def clear(self) -> None:
        await self._discard_utterance()
        self._carry = np.zeros(0, dtype=np.int16)
        if self._endpointer is not None:
            self._endpointer.reset()

    async def _finalise_turns(self) -> None:
        while not self._turns.empty():
            turn = self._turns.get_nowait()
            await self._finalise(turn)

    async def _finalise(self, turn: _Turn) -> None:
        item, metrics = turn.item, turn.metrics
        metrics.asr_model = turn.asr_model
        transcript, failure, audio_s, final = "", None, 0.0, None
        if turn.stream is not None:
            self._finishing = turn.stream
            try:
                final = await turn.stream.finish()
                transcript, audio_s = final.text, final.audio_s
            except AdapterError as exc:
                failure = str(exc)
            finally:
                self._finishing = None
                # the recogniser that gave the final: another than at the start if the first one failed over
                turn.asr_model = metrics.asr_model = turn.stream.model or turn.asr_model
        elif turn.wants_asr:
            failure = "no speech recogniser is available"
        metrics.asr_final = self._clock()
        if failure is not None:
            item.text = ""
            self._emit(ev.InputTranscriptionFailed(item_id=item.id, content_index=0, error={
                "type": "transcription_error", "code": "asr_failed", "message": failure, "param": None}))
        else:
            item.text = transcript
            if self._config().audio.input.transcription is not None:
                delta = (turn.deltas or StableWords()).final(transcript)
                if delta:
                    self._emit(ev.InputTranscriptionDelta(item_id=item.id, content_index=0, delta=delta))
                self._emit(ev.InputTranscriptionCompleted(
                    item_id=item.id, content_index=0, transcript=transcript,
                    usage={"type": "duration", "seconds": round(audio_s, 3)},
                    logprobs=word_logprobs(final) if self._config().wants_logprobs() else None))
                if final is not None:
                    self._router.feedback.transcribed(turn.asr_model, final.confidence, self.ctx, item.id)
                if final is not None and (final.words or final.confidence is not None):
                    self._emit(ev.TranscriptionWords(
                        item_id=item.id, model=turn.asr_model, audio_start_ms=turn.audio_start_ms,
                        confidence=None if final.confidence is None else round(final.confidence, 4),
                        words=[{"word": w.word, "start_ms": round(w.start_s * 1000), "end_ms": round(w.end_s * 1000),
                                "confidence": None if w.confidence is None else round(w.confidence, 4)}
                               for w in final.words]))
        self._emit(ev.ConversationItemDone(previous_item_id=turn.previous_item_id, item=item.wire()))
        if self.on_utterance is not None and turn.vector is not None and turn.envelope is not None:
            self.on_utterance(Utterance(item.id, turn.vector, turn.envelope, metrics.audio or {},
                                        transcript if failure is None else None))
        if turn.create_response and (transcript or failure):
            await self._wait_idle_response()
            self.start_response(self.default_options(), metrics=metrics, prefetched=turn.prefetched)
        elif turn.prefetched is not None:
            self._close_prefetched(turn.prefetched)
        self.metrics.append(metrics)
        if not turn.create_response:
            self._report(metrics)

    # -- responses ----------------------------------------------------------------------------
    def default_options(self, overrides: ResponseParams | None = None,
                        input_items: list[Item] | None = None) -> ResponseOptions:
        """The session's defaults, with what a `response.create` overrides (validated at the edge)."""
        cfg = self._config()
        o = overrides or ResponseParams()
        modalities = o.output_modalities or cfg.output_modalities
        max_tokens = o.max_output_tokens if "max_output_tokens" in o.model_fields_set else cfg.max_output_tokens
        tools = tool_specs(o.tools if o.tools is not None else cfg.tools)
        choice = tool_choice(o.tool_choice if o.tool_choice is not None else cfg.tool_choice, tools)
        parallel = o.parallel_tool_calls if o.parallel_tool_calls is not None else cfg.parallel_tool_calls
        return ResponseOptions(
            modality=modalities[0],
            voice=o.voice or cfg.audio.output.voice_name(),
            instructions=o.instructions or cfg.instructions,
            max_output_tokens=None if max_tokens in (None, "inf") else int(max_tokens),
            metadata=o.metadata, conversation=o.conversation,
            tools=tools if choice != "none" else (), tool_choice=choice, parallel_tool_calls=parallel,
            input_items=input_items, context=ContextWindow.of(cfg.truncation),
        )

    @property
    def responses_left(self) -> int:
        return max(0, self.max_responses - len(self._runs))

    def start_response(self, options: ResponseOptions, metrics: TurnMetrics | None = None,
                       prefetched: PrefetchedReply | None = None) -> ResponseRun:
        run = ResponseRun(emit=self._emit, router=self._router, ctx=self.ctx, conversation=self._conversation,
                          options=options, encoder=OutputEncoder(self._config().audio.output.format),
                          metrics=metrics, clock=self._clock, prefetched=prefetched)
        if options.conversation == "auto":
            self.response = run
        self._runs.add(run)
        task = run.start()
        if metrics is not None:
            metrics.response_id = run.id
        self._tasks.create_task(self._watch(run, task, metrics), name=f"response-watch-{run.id}")
        return run

    async def _watch(self, run: ResponseRun, task: asyncio.Task, metrics: TurnMetrics | None) -> None:
        """After a response: its turn's metrics, and how many more responses the session may start now."""
        await asyncio.wait([task])  # its outcome is in the response's own events; this waits for the end only
        self._runs.discard(run)
        self.prefetches_dropped += run.prefetch_used is False
        if metrics is not None:
            self._report(metrics)
        self._emit(ev.RateLimitsUpdated(rate_limits=[
            {"name": "requests", "limit": self.max_responses, "remaining": self.responses_left,
             "reset_seconds": 0.0}]))

    def _report(self, metrics: TurnMetrics) -> None:
        """A turn's latency per stage: to the client (`somagent.turn.metrics`) and to `conversation.events`."""
        self._emit(metrics.event())
        self._router.feedback.turn(self.ctx, metrics.item_id, metrics.breakdown(), metrics.asr_model)

    async def _wait_idle_response(self) -> None:
        run = self.response
        if run is not None and not run.done:
            await run.wait()

    @property
    def responding(self) -> bool:
        return self.response is not None and not self.response.done

    async def cancel_response(self, reason: str = "client_cancelled") -> bool:
        run = self.response
        if run is None or run.done:
            return False
        await run.cancel(reason)
        return True

    async def interrupt(self, reason: str) -> None:
        """Barge-in: stop the agent at once and cut its item to the audio the user actually heard."""
        run = self.response
        if run is None or not run.is_audible():
            return
        played = run.played_ms()
        await run.cancel(reason)
        if self.server_truncation and run.item.kind == "output_audio" and run.audio_ms_sent > played:
            self.truncate(run.item, played)

    def truncate(self, item: Item, audio_end_ms: float) -> None:
        """Drop the text the user did not hear: keep the share of words matching the share of audio played.

        A cut at or past what is left (an earlier cut, the end of the audio) keeps it all."""
        audio_end_ms = min(audio_end_ms, item.generated_ms)
        total = max(item.audio_ms, 1.0)
        if item.text:
            words = item.text.split()
            keep = int(len(words) * min(1.0, audio_end_ms / total))
            item.text = " ".join(words[:keep])
        item.audio_ms = min(item.audio_ms, audio_end_ms)
        self._emit(ev.ConversationItemTruncated(item_id=item.id, content_index=0, audio_end_ms=int(audio_end_ms)))

    # -- shutdown -----------------------------------------------------------------------------
    async def aclose(self) -> None:
        for run in list(self._runs):
            await run.cancel("client_cancelled")
        if self._prefetched is not None:
            await self._prefetched.aclose()
            self._prefetched = None
        await self._tasks.aclose()
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None
        while not self._turns.empty():
            turn = self._turns.get_nowait()
            if turn.stream is not None:
                await turn.stream.aclose()
            if turn.prefetched is not None:
                await turn.prefetched.aclose()

