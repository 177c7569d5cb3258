"""The Realtime GA session object: validated on every `session.update`, echoed whole in `session.updated`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

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


class Transcription(_Model):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class NoiseReduction(_Model):
    type: Literal["near_field", "far_field"] | None = None
    strength: float | None = None


class AudioInput(_Model):
    format: AudioFormat = Field(default_factory=PcmFormat)
    transcription: Transcription | None = None
    noise_reduction: NoiseReduction | None = None
    turn_detection: TurnDetection | None = Field(default_factory=ServerVad)


class AudioOutput(_Model):
    format: AudioFormat = Field(default_factory=PcmFormat)
    voice: str = "marin"
    speed: float = Field(1.0, ge=0.25, le=1.5)


class AudioConfig(_Model):
    input: AudioInput = Field(default_factory=AudioInput)
    output: AudioOutput = Field(default_factory=AudioOutput)


class SomagentOptions(_Model):
    """Our additions. `events` turns on `somagent.*` events (partials, metrics, analytics) for this session;
    `persona` names the persona whose overrides and SLAs the router applies to this conversation."""

    events: bool = False
    persona: str | None = Field(None, min_length=1, max_length=128)


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
    max_output_tokens: int | Literal["inf"] = "inf"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: Any = "auto"
    tracing: Any = None
    truncation: Any = "auto"
    prompt: Any = None
    include: list[str] | None = None
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


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a partial session into the current one; an explicit null replaces (e.g. turn_detection: null)."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("format", "turn_detection"):
            out[key] = merge(out[key], value)
        elif key in ("format", "turn_detection") and isinstance(value, dict) and isinstance(out.get(key), dict) \
                and value.get("type", out[key].get("type")) == out[key].get("type"):
            out[key] = {**out[key], **value}  # same type: a partial update keeps the other fields
        else:
            out[key] = value
    return out
