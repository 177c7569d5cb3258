"""One Realtime session: client events in, server events out, whatever the transport.

The session validates every client event and answers a bad one with an `error` event that names
the offending event and field; it never lets one bad message end the conversation. Audio and the
buffer commands share one ordered queue, so a commit always sees the audio appended before it.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import ValidationError

from adapters.aio import TaskSet
from dsp import PolyphaseResampler
from dsp.denoise import Denoiser
from router import CallContext, ModelRouter, Topic
from voice import client_events as ce
from voice import events as ev
from voice.client_events import ClientError
from voice.codec import PIPELINE_RATE, AudioFormatError, InputDecoder
from voice.conversation import Conversation, Item
from voice.events import ServerEvent
from voice.ids import new_id
from voice.limits import SessionLimits, TokenBucket
from voice.policy import PolicyEngine, Rule
from voice.session_config import SessionConfig, merge
from voice.tenants import ANONYMOUS
from voice.turn import TRUNCATE_SLACK_MS, TurnController, Utterance
from voice.vectors import AudioVault, UtteranceRecord

log = logging.getLogger(__name__)

MAX_INPUT_QUEUE = 3000  # 60 s of 20 ms appends: a client far ahead of real time is told, not buffered forever
CLOSE = object()


_APPEND_HEADS = ('{"type":"input_audio_buffer.append","audio":"', '{"type": "input_audio_buffer.append", "audio": "')


def item_of(item: ce.MessageItem | ce.FunctionCallItem | ce.FunctionCallOutputItem, item_id: str) -> Item:
    """A client's item (`conversation.item.create`, `response.input`) as a conversation item."""
    if isinstance(item, ce.FunctionCallItem):
        return Item(id=item_id, role="assistant", kind="function_call", call_id=item.call_id, name=item.name,
                    arguments=item.arguments)
    if isinstance(item, ce.FunctionCallOutputItem):
        return Item(id=item_id, role="user", kind="function_call_output", call_id=item.call_id, output=item.output)
    kind = {"user": "input_text", "system": "input_text", "assistant": "output_text"}[item.role]
    return Item(id=item_id, role=item.role, kind=kind, text=" ".join(part.value for part in item.content))


class RealtimeSession:
    def __init__(self, *, router: ModelRouter, config: SessionConfig | None = None, ctx: CallContext | None = None,
                 max_event_bytes: int = 4 * 1024 * 1024, clock: Callable[[], float] = time.monotonic,
                 observer: Callable[[ServerEvent], None] | None = None, limits: SessionLimits | None = None,
                 vault: AudioVault | None = None, policy: tuple[Rule, ...] = ()) -> None:
        self.id = new_id("sess")
        self.config = (config or SessionConfig()).model_copy(update={"id": self.id})
        self.ctx = ctx or CallContext()
        persona = self.config.somagent.persona if self.config.somagent is not None else self.ctx.persona
        self.ctx = CallContext(self.ctx.tenant, persona, self.ctx.conversation_id or new_id("conv"), self.id)
        self.max_event_bytes = max_event_bytes
        self._clock = clock
        self._observer = observer  # sees every server event (server metrics), before the somagent.* filter
        self.outbox: asyncio.Queue[ServerEvent | object] = asyncio.Queue()
        self.limits = limits = limits or SessionLimits()
        self.conversation = Conversation(limits.max_items, limits.max_conversation_chars,
                                         on_evict=lambda item: self.emit(ev.ConversationItemDeleted(item_id=item.id)))
        self.turns = TurnController(emit=self.emit, router=router, ctx=self.ctx, conversation=self.conversation,
                                    config=lambda: self.config, clock=clock, max_responses=limits.max_responses,
                                    max_buffer_ms=limits.max_buffer_s * 1000.0)
        self._events = TokenBucket(limits.events_per_s, limits.events_burst, clock)
        self._vault = vault
        if vault is not None:
            self.turns.on_utterance = self._keep_utterance
        self._policy = PolicyEngine(policy) if policy else None
        if self._policy is not None:
            self.turns.on_analytics = self._apply_policy
        self._router = router
        self._decoder = InputDecoder(self.config.audio.input.format)
        self._denoiser: Denoiser | None = None  # `audio.input.noise_reduction`: before VAD, recognition, features
        self._apply_noise_reduction()
        self._input: asyncio.Queue[tuple[str, Any, Any]] = asyncio.Queue(MAX_INPUT_QUEUE)
        # Audio is processed in the caller's own task when nothing is queued or in progress (one task switch
        # less per 20 ms append); otherwise it queues behind what came first, so the order always holds.
        self._pending = 0  # queued items, and the one the input loop is processing
        self._direct = False  # an append being processed by its caller
        self._direct_done = asyncio.Event()
        self._direct_done.set()
        self._tasks = TaskSet()  # the input loop
        self._pcm_resampler: PolyphaseResampler | None = None  # push_pcm (media transports)
        self.closed = False
        self.overflow_reason: str | None = None  # set when the client stopped reading (see _overflow)
        self.errors_sent = 0
        self._handlers = self._handler_table()
        self._pinned: dict[str, Any] = {}  # set by the transport; no session.update changes it
        # the transport's own playback queue (WebRTC's track): output_audio_buffer.clear empties it first
        self.flush_playback: Callable[[], Any] | None = None

    # -- outbound -----------------------------------------------------------------------------
    @property
    def extensions(self) -> bool:
        return self.config.somagent is not None and self.config.somagent.events

    def emit(self, event: ServerEvent) -> None:
        if self.closed or self.overflow_reason is not None:
            return
        if self.outbox.qsize() >= self.limits.max_outbox_events:
            self._overflow()
            return
        if self._observer is not None:
            self._observer(event)
        if event.extension and not self.extensions:
            return
        if event.event_id is None:
            event.event_id = new_id("event")
        self.outbox.put_nowait(event)

    def error(self, code: str, message: str, *, param: str | None = None, event_id: str | None = None,
              type_: str = "invalid_request_error") -> None:
        self.errors_sent += 1
        self.emit(ev.Error.of(code, message, type_=type_, param=param, event_id=event_id))

    def _overflow(self) -> None:
        """The client stopped reading: what waits for it is dropped, and the transport ends the session with the
        reason (the reply is not held in memory for a client that may never read it)."""
        self.overflow_reason = (f"slow_consumer: {self.limits.max_outbox_events} server events were waiting "
                                "for the client to read them")
        log.warning("session %s: %s", self.id, self.overflow_reason)
        while not self.outbox.empty():  # bounded: the queue holds max_outbox_events
            self.outbox.get_nowait()
        self.outbox.put_nowait(CLOSE)

    async def next_event(self) -> ServerEvent | None:
        """The transport's read side: the next server event, or None once the session is closed."""
        event = await self.outbox.get()
        return None if event is CLOSE else event  # type: ignore[return-value]

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self.emit(ev.SessionCreated(session=self.config.wire()))
        self._tasks.create_task(self._input_loop(), name=f"input-{self.id}")

    async def aclose(self) -> None:
        if self.closed:
            return
        await self._tasks.aclose()
        await self.turns.aclose()
        self.closed = True
        self.conversation.clear()
        if self._denoiser is not None:
            self._denoiser.close()
            self._denoiser = None
        self.outbox.put_nowait(CLOSE)

    def pin_config(self, patch: dict[str, Any]) -> None:
        """Settings the transport fixes (WebRTC: the output format its track carries), applied over every
        `session.update`, so a client that asks for another gets the pinned one in `session.updated`."""
        self._pinned = patch

    # -- inbound ------------------------------------------------------------------------------
    async def handle_text(self, raw: str | bytes) -> None:
        """One client message off the wire: never raises for bad input, answers with `error` instead."""
        if len(raw) > self.max_event_bytes:
            limit = self.max_event_bytes
            self.error("message_too_large", f"event of {len(raw)} bytes exceeds the limit of {limit} bytes")
            return
        if type(raw) is str and raw.startswith(_APPEND_HEADS):
            # the hot path, every 20 ms per session: the base64 is the string between the head and the closing
            # `"}`; JSON parsing would scan it character by character (a tenth of the loop's time per append)
            head = len(_APPEND_HEADS[0]) if raw.startswith(_APPEND_HEADS[0]) else len(_APPEND_HEADS[1])
            end = len(raw) - 2
            if raw.endswith('"}') and raw.find('"', head) == end and raw.find("\\", head) == -1:
                await self.handle_append(raw[head:end])
                return
        try:
            event = json.loads(raw)
        except RecursionError:
            self.error("nesting_too_deep", f"the event nests deeper than {ce.MAX_DEPTH} levels")
            return
        except ValueError as exc:  # not JSON, not UTF-8, an integer of more than 4300 digits
            self.error("invalid_json", f"could not parse the event as JSON: {exc}")
            return
        if ce.too_deep(raw, event):
            self.error("nesting_too_deep", f"the event nests deeper than {ce.MAX_DEPTH} levels",
                       event_id=ce.event_id_of(event))
            return
        # audio appends are bounded by the input queue (a client far ahead of real time is told), not here
        if not (isinstance(event, dict) and event.get("type") == "input_audio_buffer.append") \
                and not self._events.take():
            self.error("rate_limited", f"more than {self.limits.events_per_s:g} client events a second "
                       f"(bursts of {self.limits.events_burst}); this event was dropped",
                       event_id=ce.event_id_of(event), type_="rate_limit_error")
            return
        await self.handle(event)

    async def handle_append(self, audio: str) -> None:
        """`input_audio_buffer.append` of `audio` (base64), handled as `handle` would handle the event."""
        try:
            await self._append(ce.AudioAppend(audio, None))
        except ClientError as exc:
            self.error(exc.code, exc.message, param=exc.param, type_=exc.type)
        except Exception as exc:  # a server bug answers this event; the session goes on
            log.exception("handling input_audio_buffer.append failed")
            self.error("server_error", f"internal error handling input_audio_buffer.append: {exc}",
                       type_="server_error")

    async def handle(self, event: Any) -> None:
        """One decoded client event: validated once here (`client_events.parse`), then handled typed."""
        event_id = ce.event_id_of(event)
        try:
            parsed = ce.parse(event)
            await self._handlers[type(parsed)](parsed)
        except ClientError as exc:
            self.error(exc.code, exc.message, param=exc.param, event_id=event_id, type_=exc.type)
        except Exception as exc:  # a server bug answers this event; the session goes on
            kind = event.get("type") if isinstance(event, dict) else None
            log.exception("handling %s failed", kind)
            self.error("server_error", f"internal error handling {kind}: {exc}", event_id=event_id,
                       type_="server_error")

    def _handler_table(self) -> dict[type, Callable[[Any], Any]]:
        return {
            ce.SessionUpdate: self._session_update,
            ce.InputAudioBufferAppend: self._append,
            ce.AudioAppend: self._append,
            ce.InputAudioBufferCommit: self._commit,
            ce.InputAudioBufferClear: self._clear,
            ce.ConversationItemCreate: self._item_create,
            ce.ConversationItemDelete: self._item_delete,
            ce.ConversationItemRetrieve: self._item_retrieve,
            ce.ConversationItemTruncate: self._item_truncate,
            ce.ResponseCreate: self._response_create,
            ce.ResponseCancel: self._response_cancel,
            ce.OutputAudioBufferClear: self._output_clear,
        }

    async def _session_update(self, event: ce.SessionUpdate) -> None:
        patch = event.session
        if patch.get("type") not in (None, "realtime"):
            raise ClientError("invalid_value", "only sessions of type 'realtime' are served here", "session.type")
        patch = {k: v for k, v in patch.items() if k not in ("id", "object", "expires_at")}
        if isinstance(patch.get("instructions"), str):
            self._check_instructions(patch["instructions"], "session.instructions")
        try:
            new = SessionConfig.model_validate(merge(merge(self.config.model_dump(mode="json"), patch), self._pinned))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union")))
            raise ClientError("invalid_value", f"invalid session.{loc}: {err['msg']}", f"session.{loc}") from None
        new = new.model_copy(update={"id": self.id})
        try:  # whole before it replaces anything: a session that cannot be echoed would fail every later update
            wire = new.wire()
            json.dumps(wire)
        except (ValueError, TypeError) as exc:
            raise ClientError("invalid_value", f"the session cannot be serialised: {exc}", "session") from None
        old_format = self.config.audio.input.format
        self.config = new
        if new.audio.input.format != old_format:
            self._decoder = InputDecoder(new.audio.input.format)
        self.turns.apply_config()
        self._apply_noise_reduction()
        persona = new.somagent.persona if new.somagent is not None else None
        asked = isinstance(patch.get("somagent"), dict) and "persona" in patch["somagent"]
        if asked and persona != self.ctx.persona:  # an update that names no persona keeps the one in force (a
            # policy rule's, say); one that names it, null included, sets it
            self.ctx = replace(self.ctx, persona=persona)
            self.turns.ctx = self.ctx  # the router applies this persona's overrides from the next call on
        self.emit(ev.SessionUpdated(session=wire))

    def _check_instructions(self, text: str | None, param: str) -> None:
        if text is not None and len(text) > self.limits.max_instructions_chars:
            raise ClientError("instructions_too_large", f"instructions of {len(text)} characters; the limit is "
                              f"{self.limits.max_instructions_chars}", param)

    async def _append(self, event: ce.InputAudioBufferAppend | ce.AudioAppend) -> None:
        try:
            data = binascii.a2b_base64(event.audio, strict_mode=True)  # = b64decode(validate=True), one call less
        except (binascii.Error, ValueError):
            raise ClientError("invalid_base64", "'audio' is not valid base64", "audio") from None
        if not data:
            return
        try:
            pcm = self._decoder.decode(data)
        except AudioFormatError as exc:
            fmt = self._decoder.format.type
            raise ClientError("invalid_audio", f"{exc} (session input format {fmt})", "audio") from None
        if self._pending or self._direct:
            self._enqueue("audio", pcm, self._clock())
            return
        self._direct = True
        self._direct_done.clear()
        try:
            await self._process("audio", pcm, self._clock())
        finally:
            self._direct = False
            self._direct_done.set()

    def _enqueue(self, kind: str, payload: Any, extra: Any = None) -> None:
        try:
            self._input.put_nowait((kind, payload, extra))
        except asyncio.QueueFull:
            raise ClientError("input_overflow", "input is arriving faster than it can be processed; audio dropped",
                              type_="server_error") from None
        self._pending += 1

    async def push_pcm(self, pcm: np.ndarray, rate: int) -> bool:
        """Audio from a media transport (a WebRTC track): mono int16 at `rate`, resampled to the pipeline
        rate and queued exactly like `input_audio_buffer.append`. False when the input queue is full (dropped)."""
        if self.closed:
            return False
        if self._pcm_resampler is None or self._pcm_resampler.in_rate != rate:
            self._pcm_resampler = PolyphaseResampler(rate, PIPELINE_RATE)
        out = self._pcm_resampler.process(pcm)
        if len(out) == 0:
            return True
        try:
            self._enqueue("audio", out, self._clock())
        except ClientError:
            return False
        return True

    async def _commit(self, event: ce.InputAudioBufferCommit) -> None:
        self._enqueue("commit", event.event_id)

    async def _clear(self, event: ce.InputAudioBufferClear) -> None:
        self._enqueue("clear", event.event_id)

    async def _input_loop(self) -> None:
        while True:
            kind, payload, extra = await self._input.get()
            try:
                if self._direct:  # an append that came before this item is still being processed
                    await self._direct_done.wait()
                await self._process(kind, payload, extra)
            finally:
                self._pending -= 1

    def _apply_policy(self, item_id: str, analytics: dict[str, Any]) -> None:
        """The policy rules over this utterance's analytics: an escalation is announced to the client (a
        `somagent` event) and on the router's bus, and a rule's persona becomes the session's."""
        assert self._policy is not None
        for esc in self._policy.observe(item_id, analytics):
            payload = {**esc.payload(), "session_id": self.id, "conversation_id": self.ctx.conversation_id,
                       "tenant": self.ctx.tenant, "previous_persona": self.ctx.persona}
            log.info("session %s: policy %s escalated after %d turns", self.id, esc.rule, esc.turns)
            self.emit(ev.PolicyEscalation(values=payload))
            self._router.bus.publish(Topic.POLICY_ESCALATION, payload)
            if esc.persona is not None and esc.persona != self.ctx.persona:
                self.ctx = replace(self.ctx, persona=esc.persona)
                self.turns.ctx = self.ctx  # the router applies the persona's overrides from the next call on

    def _keep_utterance(self, u: Utterance) -> None:
        """A finished utterance's derived data to the tenant's audio vectors (never waits)."""
        assert self._vault is not None
        self._vault.submit(UtteranceRecord(
            tenant=self.ctx.tenant or ANONYMOUS, item_id=u.item_id, conversation_id=self.ctx.conversation_id or "",
            persona_id=self.ctx.persona, at=self._vault.clock(), vector=u.vector,
            envelope=[float(v) for v in u.envelope], analytics=u.analytics, transcript=u.transcript))

    def _apply_noise_reduction(self) -> None:
        """A denoiser while `noise_reduction` is set; its state carries across updates that keep it on."""
        nr = self.config.audio.input.noise_reduction
        if nr is None:
            if self._denoiser is not None:
                self._denoiser.close()
                self._denoiser = None
            return
        strength = 1.0 if nr.strength is None else nr.strength
        if self._denoiser is None:
            self._denoiser = Denoiser(strength)
        else:
            self._denoiser.strength = strength

    async def _process(self, kind: str, payload: Any, extra: Any) -> None:
        try:
            if kind == "audio":
                if self._denoiser is not None:
                    payload = self._denoiser.process(payload)
                await self.turns.feed(payload, extra)
            elif kind == "commit":
                problem = self.turns.commit()
                if problem is not None:
                    self.error("input_audio_buffer_commit_empty", problem, event_id=payload)
            elif kind == "clear":
                await self.turns.clear()
                self.emit(ev.InputAudioBufferCleared())
        except Exception as exc:  # one bad chunk must not stop the audio path
            log.exception("input processing failed")
            self.error("server_error", f"audio processing failed: {exc}", type_="server_error")

    async def _item_create(self, event: ce.ConversationItemCreate) -> None:
        item_id = event.item.id or new_id("item")
        if self.conversation.get(item_id) is not None:
            raise ClientError("item_already_exists", f"an item with id {item_id!r} already exists", "item.id")
        new = item_of(event.item, item_id)
        if new.chars > self.limits.max_item_chars:
            raise ClientError("item_too_large", f"the item holds {new.chars} characters; the limit is "
                              f"{self.limits.max_item_chars}", "item")
        previous = event.previous_item_id
        try:
            prev = self.conversation.add(new, previous)
        except KeyError:
            message = f"previous_item_id {previous!r} does not exist"
            raise ClientError("item_not_found", message, "previous_item_id") from None
        self.emit(ev.ConversationItemAdded(previous_item_id=prev, item=new.wire()))
        self.emit(ev.ConversationItemDone(previous_item_id=prev, item=new.wire()))

    async def _item_delete(self, event: ce.ConversationItemDelete) -> None:
        if not self.conversation.delete(event.item_id):
            raise ClientError("item_not_found", f"no item with id {event.item_id!r}", "item_id")
        self.emit(ev.ConversationItemDeleted(item_id=event.item_id))

    async def _item_retrieve(self, event: ce.ConversationItemRetrieve) -> None:
        item = self.conversation.get(event.item_id)
        if item is None:
            raise ClientError("item_not_found", f"no item with id {event.item_id!r}", "item_id")
        self.emit(ev.ConversationItemRetrieved(item=item.wire()))

    async def _item_truncate(self, event: ce.ConversationItemTruncate) -> None:
        item, end_ms = self.conversation.get(event.item_id), event.audio_end_ms
        if item is None:
            raise ClientError("item_not_found", f"no item with id {event.item_id!r}", "item_id")
        if item.role != "assistant" or item.kind != "output_audio":
            raise ClientError("invalid_value", "only assistant audio items can be truncated", "item_id")
        # the bound is the audio generated, not what an earlier cut left (the client's playback clock races ours),
        # with a little slack for a clock that runs ahead at the very end of the audio
        if end_ms > item.generated_ms + TRUNCATE_SLACK_MS:
            message = f"audio_end_ms {end_ms} is past the item's {item.generated_ms:.0f} ms of audio"
            raise ClientError("invalid_value", message, "audio_end_ms")
        self.turns.truncate(item, end_ms)

    async def _response_create(self, event: ce.ResponseCreate) -> None:
        params = event.response or ce.ResponseParams()
        if params.conversation == "auto" and self.turns.responding:
            raise ClientError("conversation_already_has_active_response",
                              f"conversation already has an active response in progress: {self.turns.response.id}")
        if not self.turns.responses_left:
            raise ClientError("too_many_responses", f"this session already has {self.limits.max_responses} "
                              "responses in progress (out-of-band ones included); wait for one to finish",
                              type_="server_error")
        self._check_instructions(params.instructions, "response.instructions")
        inputs = None
        if params.input is not None:
            inputs = []
            for i, entry in enumerate(params.input):
                if isinstance(entry, ce.ItemReference):
                    found = self.conversation.get(entry.id)
                    if found is None:
                        raise ClientError("item_not_found", f"no item with id {entry.id!r}", f"response.input[{i}].id")
                    inputs.append(found)
                else:
                    inputs.append(item_of(entry, entry.id or new_id("item")))
        self.turns.start_response(self.turns.default_options(params, inputs))

    async def _response_cancel(self, event: ce.ResponseCancel) -> None:
        wanted = event.response_id
        active = self.turns.response
        if active is None or active.done or (wanted and wanted != active.id):
            raise ClientError("response_cancel_not_active", "there is no active response to cancel")
        await self.turns.cancel_response("client_cancelled")

    async def _output_clear(self, event: ce.OutputAudioBufferClear) -> None:
        if self.flush_playback is not None:
            self.flush_playback()  # at once: not one more queued frame plays
        await self.turns.interrupt(reason="client_cancelled")
        self.emit(ev.OutputAudioBufferCleared(response_id=self.turns.response.id if self.turns.response else None))

