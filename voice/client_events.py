"""Client events of the OpenAI Realtime protocol, validated once at the edge into typed values.

`parse()` turns a decoded JSON value into one of the events below (one discriminated union on `type`) or
raises `ClientError` with the protocol's error code and the path of the offending field as `param`
(`item.content[0].type`). Handlers then work on typed values and check only what needs the session's
state (does the item exist, is a response active). Unknown fields are ignored, as OpenAI does; a
`session.update` keeps its `session` as the raw patch, which the session merges and validates whole.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from voice.session_config import voice_name


class ClientError(Exception):
    """Answered with an `error` event; the session goes on."""

    def __init__(self, code: str, message: str, param: str | None = None, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.code, self.message, self.param, self.type = code, message, param, type_


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Event(_Model):
    event_id: str | None = None


# -- session and input audio -----------------------------------------------------------------------
class SessionUpdate(_Event):
    type: Literal["session.update"]
    session: dict[str, Any]


class InputAudioBufferAppend(_Event):
    type: Literal["input_audio_buffer.append"]
    audio: str  # base64; decoded against the session's input format by the session


class AudioAppend:
    """`input_audio_buffer.append` as the hot path (every 20 ms per session) hands it on: two checked fields,
    no model (a pydantic model_construct cost about a tenth of the loop's time per append)."""

    __slots__ = ("audio", "event_id")
    type = "input_audio_buffer.append"

    def __init__(self, audio: str, event_id: str | None) -> None:
        self.audio, self.event_id = audio, event_id


class InputAudioBufferCommit(_Event):
    type: Literal["input_audio_buffer.commit"]


class InputAudioBufferClear(_Event):
    type: Literal["input_audio_buffer.clear"]


class OutputAudioBufferClear(_Event):
    type: Literal["output_audio_buffer.clear"]


# -- conversation items ----------------------------------------------------------------------------
class ContentPart(_Model):
    type: Literal["input_text", "text", "output_text", "input_audio", "output_audio"]
    text: str | None = None
    transcript: str | None = None
    audio: str | None = None

    @model_validator(mode="after")
    def _has_text(self) -> ContentPart:
        value = self.transcript if self.type in ("input_audio", "output_audio") else self.text
        if value is None:
            if self.audio:
                raise ValueError("audio content in conversation.item.create needs a 'transcript' here")
            raise ValueError("content text must be a string")
        return self

    @property
    def value(self) -> str:
        return (self.transcript if self.type in ("input_audio", "output_audio") else self.text) or ""


class MessageItem(_Model):
    id: str | None = None
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system"]
    content: list[ContentPart] = Field(min_length=1)


class FunctionCallItem(_Model):
    """A call the client records itself (replaying history): the model's own calls come from responses."""

    id: str | None = None
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=256)
    arguments: str = ""


class FunctionCallOutputItem(_Model):
    """The result of a call, which the client ran: the next response speaks from it."""

    id: str | None = None
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=256)
    output: str


ITEM_TAGS = ("message", "function_call", "function_call_output", "item_reference")


def _item_kind(value: Any) -> str:
    return value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "message")


ClientItem = Annotated[
    Union[Annotated[MessageItem, Tag("message")], Annotated[FunctionCallItem, Tag("function_call")],  # noqa: UP007
          Annotated[FunctionCallOutputItem, Tag("function_call_output")]],
    Discriminator(_item_kind),
]


class ConversationItemCreate(_Event):
    type: Literal["conversation.item.create"]
    item: ClientItem
    previous_item_id: str | None = None


class ConversationItemDelete(_Event):
    type: Literal["conversation.item.delete"]
    item_id: str


class ConversationItemRetrieve(_Event):
    type: Literal["conversation.item.retrieve"]
    item_id: str


class ConversationItemTruncate(_Event):
    type: Literal["conversation.item.truncate"]
    item_id: str
    content_index: Literal[0] = 0
    audio_end_ms: Annotated[StrictInt, Field(ge=0)]


class ItemReference(_Model):
    """An item of the conversation, by id, in a response's own `input`."""

    type: Literal["item_reference"]
    id: str


InputItem = Annotated[
    Union[Annotated[MessageItem, Tag("message")], Annotated[FunctionCallItem, Tag("function_call")],  # noqa: UP007
          Annotated[FunctionCallOutputItem, Tag("function_call_output")],
          Annotated[ItemReference, Tag("item_reference")]],
    Discriminator(_item_kind),
]
MAX_RESPONSE_INPUT = 100  # items in one response's own `input`: a bounded context, whatever the client sends


# -- responses -------------------------------------------------------------------------------------
class ResponseParams(_Model):
    """The `response` of `response.create`: what it overrides of the session's defaults."""

    model_config = ConfigDict(extra="allow", frozen=True)
    output_modalities: list[str] | None = None
    conversation: Literal["auto", "none"] = "auto"
    max_output_tokens: int | str | None = None
    instructions: str | None = None
    metadata: dict[str, str] | None = None
    audio: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    # its own context instead of the conversation's (None: the conversation; []: nothing but the instructions)
    input: list[InputItem] | None = Field(None, max_length=MAX_RESPONSE_INPUT)

    @field_validator("output_modalities")
    @classmethod
    def _one_modality(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (len(value) != 1 or value[0] not in ("audio", "text")):
            raise ValueError("output_modalities must be ['audio'] or ['text']")
        return value

    @field_validator("max_output_tokens", mode="before")
    @classmethod
    def _token_limit(cls, value: Any) -> Any:
        if value is None or value == "inf":
            return value
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4096:
            raise ValueError("max_output_tokens must be 1..4096 or 'inf'")
        return value

    @property
    def voice(self) -> str | None:
        """`audio.output.voice`: a name, or a custom voice's `{"id": ...}`."""
        output = (self.audio or {}).get("output")
        return voice_name(output.get("voice")) if isinstance(output, dict) else None


class ResponseCreate(_Event):
    type: Literal["response.create"]
    response: ResponseParams | None = None


class ResponseCancel(_Event):
    type: Literal["response.cancel"]
    response_id: str | None = None


_CLASSES = (
    SessionUpdate,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioBufferClear,
    OutputAudioBufferClear,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    ResponseCreate,
    ResponseCancel,
)
ClientEvent = Annotated[Union[_CLASSES], Field(discriminator="type")]  # noqa: UP007 (a union built from the tuple)
_EVENTS: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)
EVENT_TYPES = frozenset(get_args(cls.model_fields["type"].annotation)[0] for cls in _CLASSES)


def param_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the protocol's `param`: `item.content[0].type` (an item union's tag, which
    pydantic puts in the location, left out)."""
    out = ""
    for part in loc:
        if part in ITEM_TAGS:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


MAX_DEPTH = 64  # nesting of a client event's JSON: deeper is refused before anything holds it


def too_deep(raw: str | bytes, value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` (parsed from `raw`) nests objects and arrays deeper than `limit`. The count of opening
    brackets in the text bounds the depth, so an ordinary event costs two `count` calls and no walk."""
    opens = (raw.count("{") + raw.count("[")) if isinstance(raw, str) else (raw.count(b"{") + raw.count(b"["))
    if opens <= limit:
        return False
    stack = [(value, 1)]
    while stack:  # bounded: each container is visited once
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def event_id_of(event: Any) -> str | None:
    """The client's event_id, for the error that answers it, even when the event itself is invalid."""
    value = event.get("event_id") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


def parse(event: Any) -> ClientEvent | AudioAppend:
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ClientError("invalid_event", "an event must be a JSON object with a string 'type'", "type")
    kind = event["type"]
    if kind not in EVENT_TYPES:
        raise ClientError("unknown_event_type", f"unsupported event type {kind!r}", "type")
    if kind == "input_audio_buffer.append":  # the hot path (every 20 ms): two checks, no model validation
        audio, event_id = event.get("audio"), event.get("event_id")
        if type(audio) is str and (event_id is None or type(event_id) is str):
            return AudioAppend(audio, event_id)
    try:
        return _EVENTS.validate_python(event)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = param_path(err["loc"][1:])  # the first part is the event's own type tag
        message = err["msg"].removeprefix("Value error, ")
        raise ClientError("invalid_value", f"invalid {param or kind}: {message}", param or None) from None
