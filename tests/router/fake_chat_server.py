"""A real local HTTP server speaking the streaming chat-completions protocol, with scripted failures.

Reusable by any test: start it, script how each model answers (latency before the first token,
HTTP errors, mid-stream stalls, dropped connections, refusals), point an OpenAI-compatible client at
`base_url`, and read back what it received.

    server = FakeChatServer().start()
    server.script("m1", Script(status=503))                 # every request for m1 fails with 503
    server.script("m2", Script(first_token_delay_s=2.0), Script())  # slow once, then normal
    ...
    server.stop()
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class Script:
    """How the fake provider answers one request."""

    tokens: tuple[str, ...] = ("Hello", " from", " the", " fake", ".")
    first_token_delay_s: float = 0.0  # before the first content token (the role chunk goes out at once)
    token_interval_s: float = 0.0
    status: int | None = None  # answer with this HTTP error instead of a stream
    stall_after: int | None = None  # after this many tokens, go silent for `stall_s`
    stall_s: float = 30.0
    break_after: int | None = None  # after this many tokens, drop the connection mid-body
    usage: tuple[int, int] | None = (11, 5)  # (prompt, completion) tokens; None: send no usage
    finish_reason: str = "stop"
    refusal: str | None = None  # send a refusal delta instead of content
    # calls to stream after the tokens, as OpenAI-compatible servers do: (name, arguments JSON) each, the id and
    # name in the first delta, the arguments in pieces of `arguments_piece` characters; finish_reason "tool_calls"
    tool_calls: tuple[tuple[str, str], ...] = ()
    arguments_piece: int = 7
    hang_s: float | None = None  # accept the request and send nothing at all, not even headers, for this long
    garbage: bytes | None = None  # answer 200 text/event-stream with this body instead of chunks


@dataclass
class ReceivedRequest:
    model: str
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class FakeChatServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, list[Script]] = {}
        self._defaults: dict[str, Script] = {}
        self._answerers: dict[str, Callable[[dict[str, Any]], Script]] = {}
        self.requests: list[ReceivedRequest] = []
        self.ended: list[tuple[str, str, float]] = []  # (model, "done" | "client_left", monotonic time) per stream
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, *scripts: Script) -> None:
        """Queue answers for `model`: each request takes the next; the last one repeats."""
        if not scripts:
            raise ValueError("give at least one Script")
        with self._lock:
            self._queues[model] = list(scripts[:-1])
            self._defaults[model] = scripts[-1]

    def answer(self, model: str, answerer: Callable[[dict[str, Any]], Script]) -> None:
        """Answer each request for `model` with what `answerer` makes of its body (a model that knows things)."""
        with self._lock:
            self._answerers[model] = answerer

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()
            self._defaults.clear()
            self._answerers.clear()
            self.requests.clear()
            self.ended.clear()

    def requests_for(self, model: str) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if r.model == model]

    def _next(self, model: str, body: dict[str, Any]) -> Script:
        with self._lock:
            self.requests.append(ReceivedRequest(model, body))
            answerer = self._answerers.get(model)
            if answerer is not None:
                return answerer(body)
            queue = self._queues.get(model)
            if queue:
                return queue.pop(0)
            return self._defaults.get(model, Script())

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model", ""))
        script = self._next(model, body)
        if script.hang_s is not None:
            await asyncio.sleep(script.hang_s)
        if script.garbage is not None:
            return Response(script.garbage, media_type="text/event-stream")
        if script.status is not None:
            return JSONResponse(
                {"error": {"message": f"scripted HTTP {script.status}", "type": "server_error", "code": None}},
                status_code=script.status,
            )
        if not body.get("stream"):
            return JSONResponse(
                {"error": {"message": "this fake only streams", "type": "invalid_request_error"}}, status_code=400
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(self._ending(model, self._events(model, script, include_usage)),
                                 media_type="text/event-stream")

    async def _ending(self, model: str, events):  # noqa: ANN001, ANN202
        """The stream, noting how it ended: sent whole, or cut off because the client went away."""
        how = "client_left"
        try:
            async for chunk in events:
                yield chunk
            how = "done"
        finally:
            with self._lock:
                self.ended.append((model, how, time.monotonic()))

    async def _events(self, model: str, script: Script, include_usage: bool):  # noqa: ANN202
        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True) -> bytes:
            data: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [],
            }
            if choices:
                data["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
            if usage is not None:
                data["usage"] = usage
            return f"data: {json.dumps(data)}\n\n".encode()

        yield chunk({"role": "assistant", "content": ""})
        await asyncio.sleep(script.first_token_delay_s)
        if script.refusal is not None:
            yield chunk({"refusal": script.refusal})
        for i, token in enumerate(script.tokens):
            if script.stall_after is not None and i == script.stall_after:
                await asyncio.sleep(script.stall_s)
            if script.break_after is not None and i == script.break_after:
                raise ConnectionResetError("scripted broken stream")
            if i and script.token_interval_s:
                await asyncio.sleep(script.token_interval_s)
            yield chunk({"content": token})
        for index, (name, arguments) in enumerate(script.tool_calls):
            call_id = f"call_fake{len(self.requests)}_{index}"
            yield chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                         "function": {"name": name, "arguments": ""}}]})
            for at in range(0, len(arguments), max(1, script.arguments_piece)):
                piece = arguments[at:at + script.arguments_piece]
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, finish="tool_calls" if script.tool_calls else script.finish_reason)
        if include_usage and script.usage is not None:
            p, c = script.usage
            yield chunk({}, usage={"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}, choices=False)
        yield b"data: [DONE]\n\n"

    def start(self) -> FakeChatServer:
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1, access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-chat-server"
        )
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("the fake chat server did not start within 5 s")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None
