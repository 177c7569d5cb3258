"""Chat model interface: a request of messages in, a stream of text chunks out."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatUsage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ChatChunk:
    """A piece of the reply. The last chunk of a stream may carry only usage and a finish reason."""

    text: str = ""
    usage: ChatUsage | None = None
    finish_reason: str | None = None


class ChatModel(abc.ABC):
    name: str = "llm"

    async def start(self) -> None:
        """Prepare ahead of the first call (a local model starts its process); remote models need nothing."""

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream the reply; raise `adapters.errors.AdapterError` when the provider fails."""

    async def aclose(self) -> None:
        """Close connections."""
