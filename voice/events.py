"""Server events: the OpenAI Realtime (GA) ones we send and our `somagent.*` additions, as typed values.

The session and the turn loop build these; transports serialise them at the edge. `to_wire()` is the JSON
object of the protocol, so audio is base64-encoded there, and only the WebSocket (and the DataChannel, for
everything but audio) calls it: the WebRTC transport puts `OutputAudioDelta.audio` on its media track as it
is. Nested objects (a session, an item, a response) stay the dicts their owners' `wire()` methods build.
`event_id` is given when the session sends the event.
"""

from __future__ import annotations

import asyncio
import base64
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(slots=True, kw_only=True)
class ServerEvent:
    type: ClassVar[str]
    event_id: str | None = None

    @property
    def extension(self) -> bool:
        """One of ours: sent only to sessions that asked for `somagent` events."""
        return self.type.startswith("somagent.")

    def to_wire(self) -> dict[str, Any]:
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self))
        out: dict[str, Any] = {"type": self.type}
        for name in names:
            out[name] = getattr(self, name)
        return out


@dataclass(slots=True, kw_only=True)
class _Flat(ServerEvent):
    """An event whose `values` (a metrics bundle, say) are fields of the wire object itself."""

    values: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        out = ServerEvent.to_wire(self)
        out.update(out.pop("values"))
        return out


# -- session ---------------------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class SessionCreated(ServerEvent):
    type: ClassVar[str] = "session.created"
    session: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class SessionUpdated(ServerEvent):
    type: ClassVar[str] = "session.updated"
    session: dict[str, Any]


# The connection whose client events a transport's reader task handles (a call's DataChannel or one of its
# sidebands), with that task: an error raised in that task, while it handles the connection's event, is that
# connection's, and the call sends it there only. Tasks started meanwhile (a response) copy the context but are
# other tasks: their errors are the session's, for every connection.
EVENT_SOURCE: ContextVar[tuple[object, object] | None] = ContextVar("event_source", default=None)


def set_event_source(source: object) -> None:
    """Called once at the start of a reader task."""
    EVENT_SOURCE.set((source, asyncio.current_task()))


def _event_source() -> object | None:
    held = EVENT_SOURCE.get()
    return held[0] if held is not None and held[1] is asyncio.current_task() else None


@dataclass(slots=True, kw_only=True)
class Error(ServerEvent):
    type: ClassVar[str] = "error"
    error: dict[str, Any]  # type, code, message, param, event_id
    source: object | None = field(default=None, repr=False, compare=False)  # not on the wire (EVENT_SOURCE)

    @classmethod
    def of(cls, code: str, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
           event_id: str | None = None) -> Error:
        return cls(error={"type": type_, "code": code, "message": message, "param": param, "event_id": event_id},
                   source=_event_source())

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "event_id": self.event_id, "error": self.error}

    @property
    def code(self) -> str:
        return str(self.error.get("code") or "unknown")


# -- input audio buffer ----------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class InputAudioBufferSpeechStarted(ServerEvent):
    type: ClassVar[str] = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str | None


@dataclass(slots=True, kw_only=True)
class InputAudioBufferSpeechStopped(ServerEvent):
    type: ClassVar[str] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str | None


@dataclass(slots=True, kw_only=True)
class InputAudioBufferCommitted(ServerEvent):
    type: ClassVar[str] = "input_audio_buffer.committed"
    previous_item_id: str | None
    item_id: str


@dataclass(slots=True, kw_only=True)
class InputAudioBufferCleared(ServerEvent):
    type: ClassVar[str] = "input_audio_buffer.cleared"


@dataclass(slots=True, kw_only=True)
class OutputAudioBufferCleared(ServerEvent):
    type: ClassVar[str] = "output_audio_buffer.cleared"
    response_id: str | None


@dataclass(slots=True, kw_only=True)
class OutputAudioBufferStarted(ServerEvent):
    """WebRTC only: the track began playing a response."""

    type: ClassVar[str] = "output_audio_buffer.started"
    response_id: str | None


@dataclass(slots=True, kw_only=True)
class OutputAudioBufferStopped(ServerEvent):
    """WebRTC only: the track played a response to its end."""

    type: ClassVar[str] = "output_audio_buffer.stopped"
    response_id: str | None


# -- conversation items ----------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class ConversationItemAdded(ServerEvent):
    type: ClassVar[str] = "conversation.item.added"
    previous_item_id: str | None
    item: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class ConversationItemDone(ServerEvent):
    type: ClassVar[str] = "conversation.item.done"
    previous_item_id: str | None
    item: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class ConversationItemDeleted(ServerEvent):
    type: ClassVar[str] = "conversation.item.deleted"
    item_id: str


@dataclass(slots=True, kw_only=True)
class ConversationItemRetrieved(ServerEvent):
    type: ClassVar[str] = "conversation.item.retrieved"
    item: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class ConversationItemTruncated(ServerEvent):
    type: ClassVar[str] = "conversation.item.truncated"
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(slots=True, kw_only=True)
class InputTranscriptionDelta(ServerEvent):
    type: ClassVar[str] = "conversation.item.input_audio_transcription.delta"
    item_id: str
    content_index: int
    delta: str


@dataclass(slots=True, kw_only=True)
class InputTranscriptionCompleted(ServerEvent):
    type: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    item_id: str
    content_index: int
    transcript: str
    usage: dict[str, Any]
    logprobs: list[dict[str, Any]] | None = None  # with `include: ["item.input_audio_transcription.logprobs"]`


@dataclass(slots=True, kw_only=True)
class InputTranscriptionFailed(ServerEvent):
    type: ClassVar[str] = "conversation.item.input_audio_transcription.failed"
    item_id: str
    content_index: int
    error: dict[str, Any]


# -- responses -------------------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class ResponseCreated(ServerEvent):
    type: ClassVar[str] = "response.created"
    response: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class ResponseDone(ServerEvent):
    type: ClassVar[str] = "response.done"
    response: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class OutputItemAdded(ServerEvent):
    type: ClassVar[str] = "response.output_item.added"
    response_id: str
    output_index: int
    item: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class OutputItemDone(ServerEvent):
    type: ClassVar[str] = "response.output_item.done"
    response_id: str
    output_index: int
    item: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class _Content(ServerEvent):
    """An event about one content part of a response's output item."""

    response_id: str
    item_id: str
    output_index: int = 0
    content_index: int = 0


@dataclass(slots=True, kw_only=True)
class ContentPartAdded(_Content):
    type: ClassVar[str] = "response.content_part.added"
    part: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class ContentPartDone(_Content):
    type: ClassVar[str] = "response.content_part.done"
    part: dict[str, Any]


@dataclass(slots=True, kw_only=True)
class OutputAudioDelta(_Content):
    """Audio in the session's output format (PCM16 over WebRTC, where it goes on the track, never encoded)."""

    type: ClassVar[str] = "response.output_audio.delta"
    audio: bytes

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "event_id": self.event_id, "response_id": self.response_id,
                "item_id": self.item_id, "output_index": self.output_index, "content_index": self.content_index,
                "delta": base64.b64encode(self.audio).decode("ascii")}


@dataclass(slots=True, kw_only=True)
class OutputAudioDone(_Content):
    type: ClassVar[str] = "response.output_audio.done"


@dataclass(slots=True, kw_only=True)
class OutputAudioTranscriptDelta(_Content):
    type: ClassVar[str] = "response.output_audio_transcript.delta"
    delta: str


@dataclass(slots=True, kw_only=True)
class OutputAudioTranscriptDone(_Content):
    type: ClassVar[str] = "response.output_audio_transcript.done"
    transcript: str


@dataclass(slots=True, kw_only=True)
class OutputTextDelta(_Content):
    type: ClassVar[str] = "response.output_text.delta"
    delta: str


@dataclass(slots=True, kw_only=True)
class OutputTextDone(_Content):
    type: ClassVar[str] = "response.output_text.done"
    text: str


@dataclass(slots=True, kw_only=True)
class FunctionCallArgumentsDelta(ServerEvent):
    type: ClassVar[str] = "response.function_call_arguments.delta"
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    delta: str


@dataclass(slots=True, kw_only=True)
class FunctionCallArgumentsDone(ServerEvent):
    type: ClassVar[str] = "response.function_call_arguments.done"
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    name: str
    arguments: str


@dataclass(slots=True, kw_only=True)
class RateLimitsUpdated(ServerEvent):
    type: ClassVar[str] = "rate_limits.updated"
    rate_limits: list[dict[str, Any]]


# -- somagent.* ------------------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class TranscriptionPartial(ServerEvent):
    type: ClassVar[str] = "somagent.input_audio_transcription.partial"
    item_id: str | None
    text: str
    audio_ms: int


@dataclass(slots=True, kw_only=True)
class TranscriptionWords(ServerEvent):
    """The final transcript's words with their times and confidences, where the recogniser gives them (Whisper
    does, pocketsphinx gives times). Times are ms into the item's audio, which starts at `audio_start_ms` of the
    input buffer (None for a manually committed buffer); `confidence` is the utterance's (geometric mean)."""

    type: ClassVar[str] = "somagent.input_audio_transcription.words"
    item_id: str
    model: str | None
    audio_start_ms: int | None
    confidence: float | None
    words: list[dict[str, Any]]


@dataclass(slots=True, kw_only=True)
class AsrLagging(ServerEvent):
    type: ClassVar[str] = "somagent.asr.lagging"
    item_id: str | None
    lagging: bool
    backlog_ms: int


@dataclass(slots=True, kw_only=True)
class EchoSuppressed(_Flat):
    """An utterance at the level of the agent's own echo; `values` is the echo gate's decision."""

    type: ClassVar[str] = "somagent.echo.suppressed"
    item_id: str | None
    audio_end_ms: int


@dataclass(slots=True, kw_only=True)
class PolicyEscalation(_Flat):
    """A policy rule met by the user's last turns (voice/policy.py); `values`: rule, turns, persona, the analytics."""

    type: ClassVar[str] = "somagent.policy.escalation"


@dataclass(slots=True, kw_only=True)
class AudioFeatures(_Flat):
    """The committed utterance's analytics (`values`: the summary's fields)."""

    type: ClassVar[str] = "somagent.audio.features"
    item_id: str


@dataclass(slots=True, kw_only=True)
class TurnMetricsReport(_Flat):
    """Per-stage latencies of one turn (`values`: the breakdown in ms, and the utterance's analytics)."""

    type: ClassVar[str] = "somagent.turn.metrics"
    item_id: str
    response_id: str | None
    asr_model: str | None


@dataclass(slots=True, kw_only=True)
class SessionMetrics(_Flat):
    """A WebRTC call's figures after each response (`values`: barge-ins, playback, ...)."""

    type: ClassVar[str] = "somagent.session.metrics"
    session_id: str
