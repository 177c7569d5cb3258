"""One assistant response: dialogue model -> sentences -> speech, streamed as Realtime events.

The text stream and the synthesis run as two tasks joined by a queue, so a slow model does not
delay speech of what it already said, and synthesis does not hold up the transcript.

With function tools offered, the model may answer with calls instead of (or after) words: each call is an
output item of its own (`function_call`, its arguments streamed in `response.function_call_arguments.delta`),
and the message item is opened only once there are words, so a reply that only calls a tool has no empty
message. The client runs the calls, adds their `function_call_output` items and asks for the next response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.aio import cancel_and_wait
from adapters.llm.base import ChatRequest, ChatUsage, ToolCallDelta, ToolSpec
from router import AllCandidatesFailed, CallContext, ModelRouter, Role, StreamInterrupted
from voice import events as ev
from voice.codec import OutputEncoder
from voice.conversation import ContextWindow, Conversation, Item, context_messages
from voice.ids import new_id
from voice.metrics import TurnMetrics
from voice.prefetch import PrefetchedReply
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
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    parallel_tool_calls: bool | None = None
    input_items: list[Item] | None = None  # the response's own context (`response.input`) instead of the conversation
    context: ContextWindow = field(default_factory=ContextWindow)  # which conversation items it sees (`truncation`)


def chat_request(options: ResponseOptions, conversation: Conversation, then: Sequence[Item] = ()) -> ChatRequest:
    """What a response with `options` asks of the dialogue model: its own input, or the conversation as it stands
    (with its own assistant item in it, empty and left out) and `then` after it: the items a reply prepared before
    the turn ends will find there."""
    o = options
    if o.input_items is not None:
        messages = context_messages(o.instructions, o.input_items)
    else:
        messages = conversation.messages(o.instructions, o.context, then=then)
    return ChatRequest(messages=messages, max_tokens=o.max_output_tokens, tools=o.tools,
                       tool_choice=o.tool_choice, parallel_tool_calls=o.parallel_tool_calls)


def dialogue_role(router: ModelRouter, request: ChatRequest, ctx: CallContext) -> Role:
    return router.tool_role(ctx) if request.offers_tools else Role.DIALOGUE


class ResponseRun:
    """Owns the response's tasks; `cancel()` stops them and the run closes its events as cancelled."""

    def __init__(self, *, emit: Emit, router: ModelRouter, ctx: CallContext, conversation: Conversation,
                 options: ResponseOptions, encoder: OutputEncoder, metrics: TurnMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic, prefetched: PrefetchedReply | None = None) -> None:
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
        self._cancelling = False
        self._outputs: list[Item] = []  # the output items in output_index order
        self._message_open = False
        self._previous: dict[str, str | None] = {}  # item id -> the conversation item before it
        self._calls: dict[int, Item] = {}  # the model's calls by its stream index
        self._prefetched = prefetched  # this reply asked for before the turn ended (voice/prefetch.py), if it was
        self.prefetch_used: bool | None = None  # ... and whether it was this response's request (None: none given)

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
        return {"response_id": self.id, "item_id": self.item.id, "output_index": self._index(self.item),
                "content_index": 0}

    def _index(self, item: Item) -> int:
        return next((i for i, it in enumerate(self._outputs) if it is item), len(self._outputs))

    @property
    def calls(self) -> list[Item]:
        """The function calls the model made in this response."""
        return [it for it in self._outputs if it.kind == "function_call"]

    def wire(self) -> dict[str, Any]:
        out = [it.wire() for it in self._outputs
               if self.status != "in_progress" or it.text or not it.is_message]
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
    def _add_output(self, item: Item) -> None:
        self._outputs.append(item)
        self._emit(ev.OutputItemAdded(response_id=self.id, output_index=len(self._outputs) - 1, item=item.wire()))
        if self._options.conversation == "auto":
            self._previous[item.id] = prev = self._conversation.add(item)
            self._emit(ev.ConversationItemAdded(previous_item_id=prev, item=item.wire()))

    def _open_message(self) -> None:
        if self._message_open:
            return
        self._message_open = True
        self._add_output(self.item)
        audio = self._options.modality == "audio"
        self._emit(ev.ContentPartAdded(**self._ids(), part={"type": "audio", "transcript": ""} if audio
                                       else {"type": "text", "text": ""}))

    async def _run(self) -> None:
        audio = self._options.modality == "audio"
        self._emit(ev.ResponseCreated(response=self.wire()))
        if not self._options.tools:
            self._open_message()  # no calls possible: the message is the response's one item, open at once
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
            await self._close_prefetch()
            self._close_events(audio)

    async def _close_prefetch(self) -> None:
        """The prefetched request, read or not, ends with the response (a cancelled one stops the model)."""
        if self._prefetched is not None:
            await self._prefetched.aclose()

    def _request(self) -> ChatRequest:
        return chat_request(self._options, self._conversation)

    def _on_call(self, delta: ToolCallDelta) -> None:
        item = self._calls.get(delta.index)
        if item is None:
            item = self._calls[delta.index] = Item(
                id=new_id("item"), role="assistant", kind="function_call", status="in_progress",
                call_id=delta.id or new_id("call"), name=delta.name or "")
            self._add_output(item)
        elif delta.name and not item.name:
            item.name = delta.name
        if delta.arguments:
            item.arguments += delta.arguments
            self._emit(ev.FunctionCallArgumentsDelta(response_id=self.id, item_id=item.id,
                                                     output_index=self._index(item), call_id=item.call_id,
                                                     delta=delta.arguments))

    def _settle_calls(self, status: Literal["completed", "incomplete"]) -> None:
        """The calls streamed so far are whole (the stream ended) or are not (it broke off)."""
        for item in self._calls.values():
            if item.status == "in_progress":
                item.status = status if item.name else "incomplete"
        self._calls = {}

    async def _generate(self, sentences: asyncio.Queue[str | None]) -> None:
        request = self._request()
        role = dialogue_role(self._router, request, self._ctx)
        prefetched = self._prefetched
        if prefetched is not None:
            self.prefetch_used = prefetched.matches(role, request)
            if not self.prefetch_used:
                await prefetched.aclose()  # asked before the turn ended, of another context: not this reply
                prefetched = None
        if self.metrics is not None:
            self.metrics.prefetched = prefetched is not None
        splitter = SentenceSplitter()
        delta_type = ev.OutputAudioTranscriptDelta if self._options.modality == "audio" else ev.OutputTextDelta
        broken: set[str] = set()  # models whose reply broke off mid-way in this response
        while True:  # bounded: each pass but the last leaves one more model out
            joint = " " if broken and self.item.text else ""
            try:
                reply = (prefetched.chunks() if prefetched is not None and not broken
                         else self._router.stream_chat(role, request, self._ctx, exclude=broken))
                async for chunk in reply:
                    if chunk.usage is not None:
                        self.usage = chunk.usage
                    for call in chunk.tool_calls:
                        self._on_call(call)
                    if not chunk.text:
                        continue
                    self._open_message()
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
                self._settle_calls("incomplete")
                for sentence in splitter.flush():
                    sentences.put_nowait(sentence)
            except AllCandidatesFailed as exc:
                log.warning("dialogue failed: %s", exc)
                self.error = {"type": "server_error", "code": "model_unavailable", "message": str(exc)}
                text = (" " if self.item.text else "") + APOLOGY
                self._open_message()
                self.item.text = (self.item.text or "") + text
                self._emit(delta_type(**self._ids(), delta=text))
                for sentence in splitter.feed(text):
                    sentences.put_nowait(sentence)
                break
        self._settle_calls("completed")
        for sentence in splitter.flush():
            sentences.put_nowait(sentence)
        sentences.put_nowait(None)

    async def _speak(self, sentences: asyncio.Queue[str | None]) -> None:
        tts_failed = False
        broken: set[str] = set()  # voice engines that broke off mid-sentence in this response
        while (sentence := await sentences.get()) is not None:
            while not tts_failed:  # bounded: each pass but the last leaves one more engine out
                try:
                    async for pcm, rate in self._router.synthesize(sentence, self._ctx, self._options.voice,
                                                                   exclude=broken):
                        self._send_audio(self._encoder.encode(pcm, rate))
                    break
                except StreamInterrupted as exc:
                    # the engine died mid-sentence (its process killed): the next one says the sentence again,
                    # whole, and the rest of the reply
                    log.warning("voice engine %s broke off mid-sentence (%s); the next one goes on", exc.model,
                                exc.reason)
                    broken.add(exc.model)
                except AllCandidatesFailed as exc:
                    tts_failed = True  # the reply still goes out as text
                    log.warning("speech synthesis failed, continuing as text: %s", exc)
                    self._emit(ev.Error.of("tts_unavailable", "speech synthesis failed; the reply continues as "
                                           "text only", type_="server_error"))
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
            self.item.audio_ms = self.item.generated_ms = self.audio_ms_sent
            self._emit(ev.OutputAudioDelta(**self._ids(), audio=payload))

    def _close_events(self, audio: bool) -> None:
        if self.status == "in_progress":
            self.status = "failed" if self.error else "completed"
        if not self._outputs:
            self._open_message()  # no words and no calls: the reply is one empty message, as without tools
        for item in self._outputs:
            if item is self.item:
                self._close_message(audio)
            else:
                self._close_call(item)
        self.finished_at = self._clock()
        self._emit(ev.ResponseDone(response=self.wire()))

    def _close_message(self, audio: bool) -> None:
        self.item.status = "completed" if self.status == "completed" else "incomplete"
        text = self.item.text or ""
        if audio:
            self._emit(ev.OutputAudioDone(**self._ids()))
            self._emit(ev.OutputAudioTranscriptDone(**self._ids(), transcript=text))
            self._emit(ev.ContentPartDone(**self._ids(), part={"type": "audio", "transcript": text}))
        else:
            self._emit(ev.OutputTextDone(**self._ids(), text=text))
            self._emit(ev.ContentPartDone(**self._ids(), part={"type": "text", "text": text}))
        self._item_done(self.item)

    def _close_call(self, item: Item) -> None:
        if item.status == "in_progress":  # the response ended (cancelled, failed) before the call was whole
            item.status = "completed" if self.status == "completed" and item.name else "incomplete"
        if item.status == "completed":
            self._emit(ev.FunctionCallArgumentsDone(response_id=self.id, item_id=item.id,
                                                    output_index=self._index(item), call_id=item.call_id,
                                                    name=item.name, arguments=item.arguments))
        self._item_done(item)

    def _item_done(self, item: Item) -> None:
        self._emit(ev.OutputItemDone(response_id=self.id, output_index=self._index(item), item=item.wire()))
        if self._options.conversation == "auto":
            self._emit(ev.ConversationItemDone(previous_item_id=self._previous.get(item.id), item=item.wire()))
