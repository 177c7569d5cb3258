"""Any OpenAI-compatible chat-completions server, through the official `openai` SDK, streamed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import openai

from adapters.errors import AdapterError
from adapters.llm.base import ChatChunk, ChatModel, ChatRequest, ChatUsage


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


class OpenAICompatChat(ChatModel):
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
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        stream = None
        try:
            stream = await self._client.chat.completions.create(**kwargs)
            async for event in stream:
                usage = None
                if event.usage is not None:
                    usage = ChatUsage(
                        input_tokens=event.usage.prompt_tokens or 0,
                        output_tokens=event.usage.completion_tokens or 0,
                    )
                text, finish = "", None
                if event.choices:
                    choice = event.choices[0]
                    text = (choice.delta.content or "") if choice.delta else ""
                    finish = choice.finish_reason
                    if finish == "content_filter":
                        raise AdapterError("the provider filtered the reply", outcome="policy_violation")
                    if choice.delta is not None and getattr(choice.delta, "refusal", None):
                        raise AdapterError(f"{self.name}: the model refused: {choice.delta.refusal}", outcome="refusal")
                if text or usage or finish:
                    yield ChatChunk(text=text, usage=usage, finish_reason=finish)
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
