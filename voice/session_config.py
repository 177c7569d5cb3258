"""The Realtime GA session object: validated on every `session.update`, echoed whole in `session.updated`.

Every field the GA types (`openai/types/realtime/realtime_session_create_request.py`) allow is accepted, typos
are refused (`extra="forbid"`), and a `null` where a field has no null state means "not set" (the SDK's
`Optional` fields), not an error. What each field does here:

honoured: `instructions`, `output_modalities`, `max_output_tokens`, `tools` (function tools), `tool_choice`,
`parallel_tool_calls`, `truncation` (which items form the model's context), `include`
(`item.input_audio_transcription.logprobs`: per-word logprobs), `audio.input.format|turn_detection|
noise_reduction` (RNNoise, `dsp/denoise.py`), `audio.input.transcription.language|languages|prompt|keywords|delay`,
`audio.output.format|voice` (a name or `{"id": ...}`) `|speed`, `model` (the router picks the models behind it).
accepted, ignored: `reasoning` (no reasoning dialogue model is routed), `tracing` (no trace dashboard), `prompt`
(saved prompts live at OpenAI), `mcp` tools (we call no MCP server), `transcription.model` (the router picks).
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

PCM_RATES = (16000, 24000, 48000)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PcmFormat(_Model):
    type: Literal["audio/pcm"] = "audio/pcm"
    rate: Literal[16000, 24000, 48000] = 24000


class PcmuFormat(_Model):
    type: Literal["audio/pcmu"] = "audio/pcmu"


class PcmaFormat(_Model):
    type: Literal["audio/pcma"] = "audio/pcma"


class OpusFormat(_Model):
    """Our addition: one 20 ms Opus packet per base64 payload, 48 kHz mono."""

    type: Literal["audio/opus"] = "audio/opus"
    rate: Literal[48000] = 48000


AudioFormat = Annotated[Union[PcmFormat, PcmuFormat, PcmaFormat, OpusFormat], Field(discriminator="type")]


class ServerVad(_Model):
    type: Literal["server_vad"] = "server_vad"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    prefix_padding_ms: int = Field(300, ge=0, le=5000)
    silence_duration_ms: int = Field(300, ge=60, le=10000)
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = Field(None, ge=5000, le=30000)
    vad: Literal["webrtc", "silero"] = "webrtc"  # our addition: the frame classifier behind server VAD


class SemanticVad(_Model):
    """Accepted for compatibility; served by the same VAD with a silence window chosen by eagerness."""

    type: Literal["semantic_vad"] = "semantic_vad"
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True


SEMANTIC_SILENCE_MS = {"low": 800, "medium": 500, "auto": 500, "high": 250}

TurnDetection = Annotated[Union[ServerVad, SemanticVad], Field(discriminator="type")]


TranscriptionDelay = Literal["minimal", "low", "medium", "high", "xhigh"]


class Transcription(_Model):
    model: str | None = None
    language: str | None = None
    languages: list[str] | None = Field(None, max_length=100)  # the first is the one the recogniser is told
    prompt: str | None = None
    keywords: list[Annotated[str, Field(max_length=200)]] | None = Field(None, max_length=1000)
    delay: TranscriptionDelay | None = None  # how soon words go out as deltas: accuracy against latency

    def recognition_language(self) -> str | None:
        return self.language or (self.languages[0] if self.languages else None)

    def recognition_prompt(self) -> str | None:
        """`prompt` and `keywords` as one biasing text (a keyword list is how the GA guide prompts)."""
        parts = [p for p in (self.prompt, ", ".join(self.keywords or ())) if p]
        return " ".join(parts) or None


class NoiseReduction(_Model):
    """Both types are served by RNNoise; `strength` (0..1, default 1) mixes in the original signal."""

    type: Literal["near_field", "far_field"] | None = None
    strength: float | None = Field(None, ge=0.0, le=1.0)


class AudioInput(_Model):
    format: AudioFormat = Field(default_factory=PcmFormat)
    transcription: Transcription | None = None
    noise_reduction: NoiseReduction | None = None
    turn_detection: TurnDetection | None = Field(default_factory=ServerVad)


class VoiceId(_Model):
    """A custom voice by id (GA); for us the same names as the plain string form."""

    id: str = Field(min_length=1, max_length=256)


class AudioOutput(_Model):
    format: AudioFormat = Field(default_factory=PcmFormat)
    voice: Annotated[str, Field(max_length=256)] | VoiceId = "marin"
    speed: float = Field(1.0, ge=0.25, le=1.5)

    def voice_name(self) -> str:
        return voice_name(self.voice) or "marin"


def voice_name(voice: Any) -> str | None:
    """A voice as the synthesiser takes it: the string, or the `id` of `{"id": ...}`."""
    if isinstance(voice, VoiceId):
        return voice.id
    if isinstance(voice, dict):
        vid = voice.get("id")
        return vid if isinstance(vid, str) and vid else None
    return voice if isinstance(voice, str) and voice else None


class AudioConfig(_Model):
    input: AudioInput = Field(default_factory=AudioInput)
    output: AudioOutput = Field(default_factory=AudioOutput)


class SomagentOptions(_Model):
    """Our additions. `events` turns on `somagent.*` events (partials, metrics, analytics) for this session;
    `persona` names the persona whose overrides and SLAs the router applies to this conversation.
    `prefetch_reply` asks the dialogue model once the final transcript is decoded ahead of the endpoint, before the
    turn ends (voice/prefetch.py): a reply sooner, and one asked for and dropped when the user speaks on. None (the
    default): only where the dialogue model costs nothing (a local one); a billed provider would bill the dropped."""

    events: bool = False
    persona: str | None = Field(None, min_length=1, max_length=128)
    prefetch_reply: bool | None = None


class FunctionTool(_Model):
    type: Literal["function"] = "function"
    name: str | None = Field(None, max_length=256)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class McpTool(_Model):
    """Accepted and ignored: we call no MCP server (the model never sees these tools)."""

    type: Literal["mcp"]
    server_label: str
    allowed_callers: list[Literal["direct", "programmatic"]] | None = None
    allowed_tools: list[str] | dict[str, Any] | None = None
    authorization: str | None = None
    connector_id: str | None = None
    defer_loading: bool | None = None
    headers: dict[str, str] | None = None
    require_approval: Literal["always", "never"] | dict[str, Any] | None = None
    server_description: str | None = None
    server_url: str | None = None
    tunnel_id: str | None = None


def _tool_kind(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("type") or "function"  # the GA type makes `type` optional on function tools
    return getattr(value, "type", "function")


Tool = Annotated[Union[Annotated[FunctionTool, Tag("function")], Annotated[McpTool, Tag("mcp")]],  # noqa: UP007
                 Discriminator(_tool_kind)]


class ToolChoiceFunction(_Model):
    type: Literal["function"]
    name: str


class ToolChoiceMcp(_Model):
    type: Literal["mcp"]
    server_label: str
    name: str | None = None


ToolChoice = Union[Literal["none", "auto", "required"],  # noqa: UP007
                   Annotated[Union[ToolChoiceFunction, ToolChoiceMcp], Field(discriminator="type")]]  # noqa: UP007


class TracingConfiguration(_Model):
    group_id: str | None = None
    metadata: Any = None
    workflow_name: str | None = None


class TokenLimits(_Model):
    post_instructions: int | None = Field(None, ge=1)


class RetentionRatio(_Model):
    """When the context outgrows its limit, cut it to this fraction of the limit (OpenAI's cache-friendly
    truncation); the limit is `MAX_CONTEXT_ITEMS` items, or `token_limits.post_instructions` (~4 characters a
    token) where set."""

    type: Literal["retention_ratio"]
    retention_ratio: float = Field(ge=0.0, le=1.0)
    token_limits: TokenLimits | None = None


Truncation = Union[Literal["auto", "disabled"], RetentionRatio]  # noqa: UP007


class Reasoning(_Model):
    effort: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None


class PromptReference(_Model):
    id: str
    variables: dict[str, Any] | None = None
    version: str | None = None


class SessionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["realtime"] = "realtime"
    object: Literal["realtime.session"] = "realtime.session"
    id: str = ""
    model: str = "somagent-voice"
    instructions: str = "You are a helpful, concise voice assistant. Keep replies short."
    output_modalities: list[Literal["audio", "text"]] = Field(
        default_factory=lambda: ["audio"], min_length=1, max_length=1
    )
    audio: AudioConfig = Field(default_factory=AudioConfig)
    max_output_tokens: Annotated[int, Field(ge=1, le=4096)] | Literal["inf"] = "inf"
    tools: list[Tool] = Field(default_factory=list, max_length=128)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool | None = None
    tracing: Literal["auto"] | TracingConfiguration | None = None
    truncation: Truncation = "auto"
    prompt: PromptReference | None = None
    reasoning: Reasoning | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None
    expires_at: int = 0
    somagent: SomagentOptions | None = None

    def silence_ms(self) -> int | None:
        td = self.audio.input.turn_detection
        if td is None:
            return None
        if isinstance(td, SemanticVad):
            return SEMANTIC_SILENCE_MS[td.eagerness]
        return td.silence_duration_ms

    def wire(self) -> dict[str, Any]:
        """The dict sent in session.created/updated; our extension only when the client set it."""
        data = self.model_dump(mode="json")
        if self.somagent is None:
            data.pop("somagent")
        return data


    def wants_logprobs(self) -> bool:
        return "item.input_audio_transcription.logprobs" in (self.include or ())


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation may hold (through Optional, unions and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _nullable(annotation: Any) -> bool:
    if annotation is Any or annotation is None or annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _nullable(typing.get_args(annotation)[0])
    return origin in (Union, types.UnionType) and any(_nullable(a) for a in typing.get_args(annotation))


def drop_unset(patch: dict[str, Any], model: type[BaseModel] = SessionConfig) -> dict[str, Any]:
    """A patch without the nulls the GA types allow where the field has no null state (`"tools": null`,
    `"threshold": null`): those mean "not set" and leave the current value. Nulls that mean something
    (`turn_detection`, `transcription`, `noise_reduction`, `tracing`...) stay."""
    out: dict[str, Any] = {}
    for key, value in patch.items():
        field = model.model_fields.get(key)
        if field is None:
            out[key] = value  # unknown: validation refuses it with its name
            continue
        if value is None and not _nullable(field.annotation):
            continue
        if isinstance(value, dict):
            candidates = _models_in(field.annotation)
            typed = [m for m in candidates if "type" in m.model_fields
                     and m.model_fields["type"].default == value.get("type")]
            sub = typed[0] if typed else candidates[0] if len(candidates) == 1 else None
            if sub is not None:
                value = drop_unset(value, sub)
        out[key] = value
    return out


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a partial session into the current one; an explicit null replaces (e.g. turn_detection: null)
    where the field has a null state, and is "not set" where it has none (`drop_unset`)."""
    return _merge(base, drop_unset(patch))


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        current = out.get(key)
        if not (isinstance(value, dict) and isinstance(current, dict)) or key in _WHOLE:
            out[key] = value
        elif key in _TYPED:  # same type: a partial update keeps the other fields; another type starts afresh
            out[key] = {**current, **value} if value.get("type", current.get("type")) == current.get("type") \
                else value
        else:
            out[key] = _merge(current, value)
    return out


_TYPED = ("format", "turn_detection", "tool_choice", "truncation")  # objects told apart by their `type`
_WHOLE = ("voice", "prompt", "tracing", "parameters", "metadata")  # replaced whole, never merged key by key
