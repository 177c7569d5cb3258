"""Any OpenAI-compatible chat-completions server, through the official `openai` SDK, streamed.

Function tools go out as chat-completions `tools`/`tool_choice`; the streamed `tool_calls` deltas come back as
`ToolCallDelta`s, index by index, as such servers send them (id and name first, arguments in pieces).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import openai

from adapters.errors import AdapterError
from adapters.llm.base import ChatChunk, ChatMessage, ChatModel, ChatRequest, ChatUsage, ToolCallDelta


@dataclass(frozen=True)
class OpenAICompatConfig:
    base_url: str
    model: str
    api_key: str = "not-needed"
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OpenAICompatConfig | None:
        """SOMAGENT_LLM_BASE_URL / _API_KEY / _MODEL; None when no base URL is set."""
        env = os.environ if environ is None else environ
        base_url = env.get("SOMAGENT_LLM_BASE_URL")
        if not base_url:
            return None
        return cls(
            base_url=base_url,
            model=env.get("SOMAGENT_LLM_MODEL", "gpt-4o-mini"),
            api_key=env.get("SOMAGENT_LLM_API_KEY") or "not-needed",
        )


def wire_message(m: ChatMessage) -> dict[str, Any]:
    """A message in the chat-completions shape (an assistant's calls, a tool's result)."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in m.tool_calls]
        out["content"] = m.content or None
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
    return out


def tool_kwargs(request: ChatRequest) -> dict[str, Any]:
    """`tools`, `tool_choice` and `parallel_tool_calls` for a request that offers tools; nothing otherwise."""
    if not request.offers_tools:
        return {}
    out: dict[str, Any] = {"tools": [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in request.tools]}
    choice = request.tool_choice
    named = {"type": "function", "function": {"name": choice}}
    out["tool_choice"] = choice if choice in ("auto", "required") else named
    if request.parallel_tool_calls is not None:
        out["parallel_tool_calls"] = request.parallel_tool_calls
    return out


class OpenAICompatChat(ChatModel):
    supports_tools = True

    def __init__(self, config: OpenAICompatConfig) -> None:
        self.config = config
        self.name = f"openai-compat:{config.model}"
        # Retries are the router's job (failover); the SDK's own would hide latency and errors.
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url, api_key=config.api_key, timeout=config.timeout_s, max_retries=0
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        kwargs: dict = {
            "model": self.config.model,
            "messages": [wire_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            **tool_kwargs(request),
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        stream = None
        answered = False  # a chunk with text, a call or a finish reason came
        try:
            stream = await self._client.chat.completions.create(**kwargs)
            async for event in stream:
                usage = None
                if event.usage is not None:
                    usage = ChatUsage(
                        input_tokens=event.usage.prompt_tokens or 0,
                        output_tokens=event.usage.completion_tokens or 0,
                    )
                text, finish, calls = "", None, ()
                if event.choices:
                    choice = event.choices[0]
                    text = (choice.delta.content or "") if choice.delta else ""
                    finish = choice.finish_reason
                    if choice.delta is not None and choice.delta.tool_calls:
                        calls = tuple(_call_delta(c) for c in choice.delta.tool_calls)
                    if finish == "content_filter":
                        raise AdapterError("the provider filtered the reply", outcome="policy_violation")
                    if choice.delta is not None and getattr(choice.delta, "refusal", None):
                        raise AdapterError(f"{self.name}: the model refused: {choice.delta.refusal}", outcome="refusal")
                if text or usage or finish or calls:
                    answered = answered or bool(text or finish or calls)
                    yield ChatChunk(text=text, usage=usage, finish_reason=finish, tool_calls=calls)
            if not answered:
                # a 200 whose body is no chat-completions stream (an HTML error page from a proxy, SSE lines that
                # are not JSON chunks): the SDK skips what it cannot parse and ends, which is no reply at all
                raise AdapterError(f"{self.name}: the stream ended without a completion (not a chat-completions "
                                   "stream?)")
        except AdapterError:
            raise
        except openai.APITimeoutError as exc:
            raise AdapterError(f"{self.name}: timed out", outcome="timeout") from exc
        except openai.APIStatusError as exc:
            raise AdapterError(f"{self.name}: HTTP {exc.status_code}: {exc.message}") from exc
        except openai.APIError as exc:
            raise AdapterError(f"{self.name}: {exc}") from exc
        except Exception as exc:  # a transport error mid-stream (connection reset, truncated body)
            raise AdapterError(f"{self.name}: stream broke: {type(exc).__name__}: {exc}") from exc
        finally:
            if stream is not None:  # release the connection even when the caller abandons the stream
                await stream.close()

    async def aclose(self) -> None:
        await self._client.close()


def _call_delta(call: Any) -> ToolCallDelta:
    fn = call.function
    return ToolCallDelta(index=call.index or 0, id=call.id or None, name=(fn.name if fn else None) or None,
                         arguments=(fn.arguments if fn else None) or "")
