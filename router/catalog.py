"""The models the router may call: the adapter that serves each, its price in the role's unit, and priors.

A price of None means the cost is *unknown*; that is stated wherever cost is used (telemetry, scores,
selection) and never replaced by a silent default. A price of zero means *free* (embedded engines).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from router.roles import Role


class Unit(StrEnum):
    """What a role is billed by. Prices are USD per one of these."""

    TOKENS_1K = "1k_tokens"  # LLM roles: per 1,000 input / output tokens
    AUDIO_SECOND = "audio_second"  # speech recognition: per second of audio
    CHARACTER = "character"  # speech synthesis: per character of text


def role_unit(role: Role) -> Unit:
    if role is Role.SPEECH_RECOGNITION:
        return Unit.AUDIO_SECOND
    if role is Role.SPEECH_SYNTHESIS:
        return Unit.CHARACTER
    return Unit.TOKENS_1K


LLM_ROLES = frozenset(r for r in Role if role_unit(r) is Unit.TOKENS_1K)

# Typical (input, output) tokens of one call per LLM role: blends input and output prices into one
# per-1k figure comparable with the cost per 1k tokens that telemetry observes.
TYPICAL_TOKENS: dict[Role, tuple[int, int]] = {
    Role.DIALOGUE: (1200, 120),
    Role.TOOL_PLANNING: (1500, 200),
    Role.CODE: (2000, 600),
    Role.KNOWLEDGE: (1500, 300),
    Role.SUMMARY: (3000, 300),
}


@dataclass(frozen=True)
class Price:
    """USD per unit: `input` per 1k input tokens (or per audio second / per character), `output` per 1k
    output tokens (LLMs only)."""

    unit: Unit
    input: float
    output: float = 0.0
    source: str = ""  # where the figure was published, and when

    def __post_init__(self) -> None:
        if self.input < 0 or self.output < 0:
            raise ValueError("prices cannot be negative")

    def cost(self, units_in: float, units_out: float = 0.0) -> float:
        """Cost of one call: tokens for LLMs, seconds of audio for ASR, characters for TTS."""
        if self.unit is Unit.TOKENS_1K:
            return (units_in * self.input + units_out * self.output) / 1000.0
        return (units_in + units_out) * self.input

    def blended(self, role: Role) -> float:
        """One figure per role unit (per 1k tokens at the role's typical in/out mix)."""
        if self.unit is not Unit.TOKENS_1K:
            return self.input
        tin, tout = TYPICAL_TOKENS.get(role, (1000, 100))
        return (tin * self.input + tout * self.output) / (tin + tout)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: Role
    provider: str
    factory: Callable[[], Any]  # builds the adapter (ChatModel, SpeechRecognizer or SpeechSynthesizer)
    price: Price | None = None  # None: cost unknown (explicit, see module docstring)
    adapter: str = ""  # adapter kind serving the model: "openai-compatible", "embedded", "pocketsphinx", ...
    roles: frozenset[Role] = frozenset()  # further roles the model may serve
    quality: float | None = None  # 0..1 prior; None: unknown
    safety: frozenset[str] = frozenset()  # safety properties the model/provider guarantees, e.g. "content_filter"
    expected_first_output_ms: float | None = None  # prior used for scoring before telemetry exists
    last_resort: bool = False  # only used when everything else failed; never auto-selected
    credentials_ref: str | None = None  # name of the secret / env var holding its key, never the key
    tools: bool = False  # an LLM that calls functions (chat-completions `tools`); others get results as text

    def serves(self, role: Role) -> bool:
        return role is self.role or role in self.roles

    @property
    def all_roles(self) -> frozenset[Role]:
        return frozenset({self.role, *self.roles})

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "adapter": self.adapter or self.provider,
            "roles": sorted(r.value for r in self.all_roles),
            "quality": self.quality,
            "safety": sorted(self.safety),
            "last_resort": self.last_resort,
            "credentials_ref": self.credentials_ref,
            "tools": self.tools,
            "price": None
            if self.price is None
            else {
                "unit": self.price.unit.value,
                "input": self.price.input,
                "output": self.price.output,
                "source": self.price.source,
            },
            "cost_known": self.price is not None,
        }


class Catalog:
    """Model entries and the adapter instances built from them (one shared instance per model)."""

    def __init__(self, entries: list[ModelEntry] | None = None) -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._instances: dict[str, Any] = {}
        for entry in entries or []:
            self.add(entry)

    def add(self, entry: ModelEntry) -> None:
        self._entries[entry.name] = entry

    def entry(self, name: str) -> ModelEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise LookupError(f"unknown model {name!r}") from None

    def get(self, name: str) -> ModelEntry | None:
        return self._entries.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def for_role(self, role: Role) -> list[ModelEntry]:
        return [e for e in self._entries.values() if e.serves(role)]

    def adapter(self, name: str) -> Any:
        if name not in self._instances:
            self._instances[name] = self.entry(name).factory()
        return self._instances[name]

    def built(self) -> list[Any]:
        return list(self._instances.values())

    def built_items(self) -> list[tuple[str, Any]]:
        """(model name, adapter) for the adapters built so far."""
        return list(self._instances.items())
