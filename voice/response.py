"""One assistant response: dialogue model -> sentences -> speech, streamed as Realtime events.

The text stream and the synthesis run as two tasks joined by a queue, so a slow model does not
delay speech of what it already said, and synthesis does not hold up the transcript.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.aio import cancel_and_wait
from adapters.llm.base import ChatRequest, ChatUsage
from router import AllCandidatesFailed, CallContext, ModelRouter, Role, StreamInterrupted
from voice import events as ev
from voice.codec import OutputEncoder
from voice.conversation import Conversation, Item
from voice.ids import new_id
from voice.metrics import TurnMetrics
from voice.sentences import SentenceSplitter

log = logging.getLogger(__name__)

APOLOGY = "Sorry, I can't answer right now. Please try again in a moment."

Emit = Callable[[ev.ServerEvent], None]


@dataclass
class ResponseOptions:
    modality: Literal["audio", "text"]
    voice: str
    instructions: str
    max_output_tokens: int | None
    metadata: dict[str, str] | None = None
    conversation: Literal["auto", "none"] = "auto"
    extra_messages: tuple = field(default_factory=tuple)


class ResponseRun:
    """Owns the response's tasks; `cancel()` stops them and the run closes its events as cancelled."""

    def __init__(self, *, emit: Emit, router: ModelRouter, ctx: CallContext, conversation: Conversation,
                 options: ResponseOptions, encoder: OutputEncoder, metrics: TurnMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.id = new_id("resp")
        kind = "output_audio" if options.modality == "audio" else "output_text"
        self.item = Item(id=new_id("item"), role="assistant", kind=kind, text="", status="in_progress")
        self._emit = emit
        self._router = router
        self._ctx = ctx
        self._conversation = conversation
        self._options = options
        self._encoder = encoder
        self._clock = clock
        self.metrics = metrics
        self.status: str = "in_progress"
        self.status_reason: str | None = None
        self.error: dict[str, Any] | None = None
        self.usage: ChatUsage | None = None
        self.audio_ms_sent = 0.0
        self.first_audio_at: float | None = None
        self.finished_at: float | None = None
        self._task: asyncio.Task | None = None
        self._previous_item_id: str | None = None
        self._cancelling = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        self._task = asyncio.create_task(self._run(), name=f"response-{self.id}")
        return self._task

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def cancel(self, reason: str) -> None:
        if self._task is None or self._task.done():
            return
        self.status_reason = reason
        self._cancelling = True
        await cancel_and_wait(self._task)  # _run turns the cancellation into the response's status

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    def played_ms(self, now: float | None = None) -> float:
        """Audio the client has played by now, assuming real-time playback from the first delta."""
        if self.first_audio_at is None:
            return 0.0
        now = self._clock() if now is None else now
        return min(self.audio_ms_sent, max(0.0, (now - self.first_audio_at) * 1000.0))

    def is_audible(self, now: float | None = None) -> bool:
        """Still generating, or audio sent that has not finished playing."""
        return not self.done or self.played_ms(now) < self.audio_ms_sent

    # -- events ------------------------------------------------------------------------------
    def _ids(self) -> dict[str, Any]:
        return {"response_id": self.id, "item_id": self.item.id, "output_index": 0, "content_index": 0}

    def wire(self) -> dict[str, Any]:
        out = [self.item.wire()] if self.status != "in_progress" or self.item.text else []
        status_details = None
        if self.status in ("cancelled", "incomplete"):
            status_details = {"type": self.status, "reason": self.status_reason}
        elif self.status == "failed":
            status_details = {"type": "failed", "error": self.error}
        usage = None
        if self.usage is not None:
            usage = {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens,
                     "total_tokens": self.usage.input_tokens + self.usage.output_tokens}
        return {
            "id": self.id, "object": "realtime.response", "status": self.status, "status_details": status_details,
            "output": out,
            "conversation_id": None if self._options.conversation == "none" else self._ctx.conversation_id,
            "output_modalities": [self._options.modality],
            "audio": {"output": {"format": self._encoder.format.model_dump(mode="json"), "voice": self._options.voice}},
            "max_output_tokens": self._options.max_output_tokens or "inf",
            "metadata": self._options.metadata, "usage": usage,
        }

    # -- the run -----------------------------------------------------------------------------
    async def _run(self) -> None:
        audio = self._options.modality == "audio"
        self._emit(ev.ResponseCreated(response=self.wire()))
        self._emit(ev.OutputItemAdded(response_id=self.id, output_index=0, item=self.item.wire()))
        if self._options.conversation == "auto":
            self._previous_item_id = self._conversation.add(self.item)
            self._emit(ev.ConversationItemAdded(previous_item_id=self._previous_item_id, item=self.item.wire()))
        self._emit(ev.ContentPartAdded(**self._ids(), part={"type": "audio", "transcript": ""} if audio
                                       else {"type": "text", "text": ""}))
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self._speak(sentences), name=f"tts-{self.id}") if audio else None
        try:
            await self._generate(sentences)
            if speaker is not None:
                await speaker
            if self._cancelling:  # a provider may swallow the cancellation; the request still stands
                raise asyncio.CancelledError
            self.status = "failed" if self.error else "completed"
        except asyncio.CancelledError:
            self.status = "cancelled"
            self.status_reason = self.status_reason or "client_cancelled"
        except Exception as exc:  # a bug must end this response, not the session
            log.exception("response %s failed", self.id)
            self.status = "failed"
            self.error = {"type": "server_error", "code": "response_failed", "message": str(exc)}
        finally:
            await cancel_and_wait(speaker)
            self._close_events(audio)

    async def _generate(self, sentences: asyncio.Queue[str | None]) -> None:
        messages = self._conversation.messages(self._options.instructions)
        if self._options.conversation == "none":
            messages = messages[:1] + tuple(self._options.extra_messages)
        else:
            messages = messages + tuple(self._options.extra_messages)
        # The assistant item itself is in the conversation, empty: drop it from the prompt.
        request = ChatRequest(messages=messages, max_tokens=self._options.max_output_tokens)
        splitter = SentenceSplitter()
        delta_type = ev.OutputAudioTranscriptDelta if self._options.modality == "audio" else ev.OutputTextDelta
        broken: set[str] = set()  # models whose reply broke off mid-way in this response
        while True:  # bounded: each pass but the last leaves one more model out
            joint = " " if broken and self.item.text else ""
            try:
                async for chunk in self._router.stream_chat(Role.DIALOGUE, request, self._ctx, exclude=broken):
                    if chunk.usage is not None:
                        self.usage = chunk.usage
                    if not chunk.text:
                        continue
                    if self.metrics is not None and self.metrics.llm_first_token is None:
                        self.metrics.llm_first_token = self._clock()
                    text, joint = joint + chunk.text, ""
                    self.item.text = (self.item.text or "") + text
                    self._emit(delta_type(**self._ids(), delta=text))
                    for sentence in splitter.feed(text):
                        sentences.put_nowait(sentence)
                break
            except StreamInterrupted as exc:
                # The model broke off mid-reply (a local model's process died, a provider dropped the stream): what
                # was said stands, and the next model answers the same request after it.
                log.warning("dialogue model %s broke off mid-reply (%s); asking the next one", exc.model, exc.reason)
                broken.add(exc.model)
                for sentence in splitter.flush():
                    sentences.put_nowait(sentence)
            except AllCandidatesFailed as exc:
                log.warning("dialogue failed: %s", exc)
                self.error = {"type": "server_error", "code": "model_unavailable", "message": str(exc)}
                text = (" " if self.item.text else "") + APOLOGY
                self.item.text = (self.item.text or "") + text
                self._emit(delta_type(**self._ids(), delta=text))
                for sentence in splitter.feed(text):
                    sentences.put_nowait(sentence)
                break
        for sentence in splitter.flush():
            sentences.put_nowait(sentence)
        sentences.put_nowait(None)

    async def _speak(self, sentences: asyncio.Queue[str | None]) -> None:
        tts_failed = False
        while (sentence := await sentences.get()) is not None:
            if tts_failed:
                continue
            try:
                async for pcm, rate in self._router.synthesize(sentence, self._ctx, self._options.voice):
                    self._send_audio(self._encoder.encode(pcm, rate))
            except AllCandidatesFailed as exc:
                tts_failed = True  # the reply still goes out as text
                log.warning("speech synthesis failed, continuing as text: %s", exc)
                self._emit(ev.Error.of("tts_unavailable", "speech synthesis failed; the reply continues as text only",
                                       type_="server_error"))
        self._send_audio(self._encoder.flush())

    def _send_audio(self, payloads: list[bytes]) -> None:
        if self._cancelling:
            return
        for payload in payloads:
            if not payload:
                continue
            if self.first_audio_at is None:
                self.first_audio_at = self._clock()
                if self.metrics is not None:
                    self.metrics.first_audio = self.first_audio_at
            self.audio_ms_sent += self._encoder.payload_ms(payload)
            self.item.audio_ms = self.audio_ms_sent
            self._emit(ev.OutputAudioDelta(**self._ids(), audio=payload))

    def _close_events(self, audio: bool) -> None:
        if self.status == "in_progress":
            self.status = "failed" if self.error else "completed"
        self.item.status = "completed" if self.status == "completed" else "incomplete"
        text = self.item.text or ""
        if audio:
            self._emit(ev.OutputAudioDone(**self._ids()))
            self._emit(ev.OutputAudioTranscriptDone(**self._ids(), transcript=text))
            self._emit(ev.ContentPartDone(**self._ids(), part={"type": "audio", "transcript": text}))
        else:
            self._emit(ev.OutputTextDone(**self._ids(), text=text))
            self._emit(ev.ContentPartDone(**self._ids(), part={"type": "text", "text": text}))
        self._emit(ev.OutputItemDone(response_id=self.id, output_index=0, item=self.item.wire()))
        if self._options.conversation == "auto":
            self._emit(ev.ConversationItemDone(previous_item_id=self._previous_item_id, item=self.item.wire()))
        self.finished_at = self._clock()
        self._emit(ev.ResponseDone(response=self.wire()))
