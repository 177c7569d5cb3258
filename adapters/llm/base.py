"""Chat model interface: a request of messages in, a stream of text chunks (and tool calls) out.

Tools follow the chat-completions shape, the lingua franca of OpenAI-compatible servers: a request carries
function definitions, the reply may stream `tool_calls` (one entry per call, its arguments in pieces), and
the conversation carries an assistant message's calls and each call's result as a `tool` message. A model
that cannot call tools sees the same conversation as text (`without_tools`).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal


@dataclass(frozen=True)
class ToolCall:
    """A call the model made: `arguments` is the JSON text the model wrote (not parsed: the client runs it)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # assistant: the calls it made
    tool_call_id: str | None = None  # tool: the call this message answers


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call: its JSON-schema `parameters`."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    tools: tuple[ToolSpec, ...] = ()
    # "auto" | "none" | "required" | the name of the one function the model must call
    tool_choice: str = "auto"
    parallel_tool_calls: bool | None = None

    @property
    def offers_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"


@dataclass(frozen=True)
class ChatUsage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a streamed tool call: `index` tells the calls apart; id and name come with its first piece."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class ChatChunk:
    """A piece of the reply. The last chunk of a stream may carry only usage and a finish reason."""

    text: str = ""
    usage: ChatUsage | None = None
    finish_reason: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()


_RESULT_HEAD = "Result of "


def without_tools(request: ChatRequest) -> ChatRequest:
    """The request for a model that cannot call tools: no tool definitions, and the conversation's calls and
    results as plain text, so that it can still speak a result the client computed."""
    if not request.tools and not any(m.tool_calls or m.role == "tool" for m in request.messages):
        return request
    messages: list[ChatMessage] = []
    names: dict[str, str] = {}
    for m in request.messages:
        if m.tool_calls:
            for call in m.tool_calls:
                names[call.id] = call.name
            calls = "; ".join(f"{c.name}({c.arguments})" for c in m.tool_calls)
            text = (m.content + " " if m.content else "") + f"(called {calls})"
            messages.append(ChatMessage("assistant", text))
        elif m.role == "tool":
            name = names.get(m.tool_call_id or "", "the tool")
            messages.append(ChatMessage("user", f"{_RESULT_HEAD}{name}: {m.content}"))
        else:
            messages.append(m)
    return replace(request, messages=tuple(messages), tools=())


def tool_result(message: ChatMessage) -> tuple[str, str] | None:
    """(function name, result) when `message` is a tool's result as `without_tools` writes it."""
    if message.role != "user" or not message.content.startswith(_RESULT_HEAD):
        return None
    name, _, result = message.content[len(_RESULT_HEAD):].partition(": ")
    return name, result


class ChatModel(abc.ABC):
    name: str = "llm"
    supports_tools: bool = False  # True: it takes `tools` and may answer with tool calls

    async def start(self) -> None:
        """Prepare ahead of the first call (a local model starts its process); remote models need nothing."""

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream the reply; raise `adapters.errors.AdapterError` when the provider fails."""

    async def aclose(self) -> None:
        """Close connections."""
