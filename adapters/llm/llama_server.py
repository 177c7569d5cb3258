"""A GGUF chat model (llama-cpp-python) behind a minimal OpenAI-compatible HTTP server, run as its own process.

    python -m adapters.llm.llama_server --model MODEL.gguf [--name NAME] [--threads N] [--ctx N] [--max-waiting N]

`adapters.llm.local_server` starts and supervises it; it is reached through the same OpenAI-compatible adapter as
any remote model. It serves `POST /v1/chat/completions` (streamed as server-sent events, or whole), `GET
/v1/models` and `GET /health`, on 127.0.0.1 and a port the kernel picks; once the model is loaded it prints one
line, `{"ready": true, "port": P, "pid": ...}`, to stdout.

One generation runs at a time (a llama.cpp context is not shared between threads); at most `--max-waiting` requests
wait for it and further ones get 503 at once, so a caller's router falls back instead of queueing without bound.
Tokens are produced on a worker thread, one at a time, so a client that disconnects (a barge-in) stops its
generation at the next token. The process ends when its stdin closes: it never outlives the server that started it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

log = logging.getLogger("llama_server")

# Sampling fields passed on to llama.cpp as they are (when present); everything else in a request is ignored.
SAMPLING = ("temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "repeat_penalty",
            "seed", "stop")


class ChatEngine:
    """The loaded model (a `llama_cpp.Llama`, or anything with its `create_chat_completion` and `n_tokens`) and the
    one-at-a-time rule."""

    def __init__(self, llm: Any, name: str, max_waiting: int) -> None:
        self.llm = llm
        self.name = name
        self.max_waiting = max_waiting
        self.lock = asyncio.Lock()
        self.waiting = 0
        self.generations = 0
        self.last: dict[str, Any] = {}  # the last generation: completion tokens, whether its client left early

    @classmethod
    def load(cls, model_path: str, name: str, threads: int, ctx: int, max_waiting: int) -> ChatEngine:
        from llama_cpp import Llama

        llm = Llama(model_path=model_path, n_ctx=ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
        for _ in llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}], max_tokens=1, stream=True):
            pass  # the first evaluation allocates its buffers: not on a user's turn
        return cls(llm, name, max_waiting)

    def _open(self, body: dict[str, Any]) -> tuple[Iterator[dict[str, Any]], dict[str, Any] | None]:
        """Worker thread: start the generation and evaluate the prompt (until the first chunk). A conversation
        longer than the context loses its oldest turns (the system message and the last turn stay)."""
        messages = [{"role": str(m.get("role", "user")), "content": str(m.get("content") or "")}
                    for m in body["messages"] if isinstance(m, dict)]
        kwargs = {k: body[k] for k in SAMPLING if body.get(k) is not None}
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        while True:
            stream = self.llm.create_chat_completion(messages=messages, stream=True, max_tokens=max_tokens, **kwargs)
            try:
                return stream, next(stream, None)
            except ValueError as exc:
                droppable = [i for i, m in enumerate(messages[:-1]) if m["role"] != "system"]
                if "context window" not in str(exc) or not droppable:
                    raise
                del messages[droppable[0]]

    def _produce(self, body: dict[str, Any], emit: Any, stop: threading.Event) -> None:
        """Worker thread: the whole generation, chunk by chunk onto the caller's queue, until done or told to stop."""
        stream = None
        prompt_tokens = completion_tokens = 0
        try:
            stream, chunk = self._open(body)
            while chunk is not None and not stop.is_set():
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content") or ""
                if text:
                    if completion_tokens == 0:  # the prompt is evaluated, one reply token sampled
                        prompt_tokens = max(0, self.llm.n_tokens)
                    completion_tokens += 1
                if text or choice.get("finish_reason"):
                    emit({"text": text, "finish_reason": choice.get("finish_reason")})
                chunk = next(stream, None)
            emit({"usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                            "total_tokens": prompt_tokens + completion_tokens}})
        except Exception as exc:
            emit(exc)
        finally:
            if stream is not None:
                stream.close()  # stops llama.cpp at the token in hand
            self.last = {"completion_tokens": completion_tokens, "stopped_early": stop.is_set()}

    async def generate(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Chunks of the reply (`{"text", "finish_reason"}`), then one `{"usage": ...}`; waits for its turn.

        The model is held (the lock) until its worker thread has ended, even when the caller went away earlier."""
        if self.waiting >= self.max_waiting and self.lock.locked():
            raise Busy(f"{self.waiting} requests already waiting")
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()  # bounded by max_tokens
        stop = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def run() -> None:
            try:
                self._produce(body, emit, stop)
            finally:
                loop.call_soon_threadsafe(self.lock.release)

        self.generations += 1
        try:
            threading.Thread(target=run, name=f"generation-{self.generations}", daemon=True).start()
        except BaseException:
            self.lock.release()
            raise
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item
                if "usage" in item:
                    return
        finally:
            stop.set()


class Busy(RuntimeError):
    pass


def build_app(engine: ChatEngine) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": engine.name, "waiting": engine.waiting,
                             "busy": engine.lock.locked(), "generations": engine.generations,
                             "last_generation": engine.last})

    async def models(_request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": engine.name, "object": "model", "owned_by": "local"}]})

    async def chat(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return error(400, "messages must be a non-empty list")
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        base = {"id": cid, "created": created, "model": engine.name}
        chunks = engine.generate(body)
        try:
            first = await chunks.__anext__()  # waits for the model: errors are a status now, not a broken stream
        except Busy as exc:
            return error(503, f"the local model is busy: {exc}", "server_busy")
        except Exception as exc:  # llama.cpp: ValueError for what it cannot take
            log.warning("generation failed: %r", exc)
            return error(400 if isinstance(exc, (ValueError, TypeError)) else 500, f"generation failed: {exc}")
        if not body.get("stream"):
            parts, finish, usage = [], None, None
            item = first
            try:
                while "usage" not in item:
                    parts.append(item["text"])
                    finish = item["finish_reason"] or finish
                    item = await chunks.__anext__()
            finally:
                await chunks.aclose()
            usage = item["usage"]
            return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                 "finish_reason": finish or "stop"}]})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events() -> AsyncIterator[bytes]:
            item: dict[str, Any] | None = first
            role_sent = False
            try:
                while item is not None:
                    if "usage" in item:
                        if include_usage:
                            out = {**base, "object": "chat.completion.chunk", "choices": [], "usage": item["usage"]}
                            yield b"data: " + json.dumps(out).encode() + b"\n\n"
                        break
                    delta: dict[str, Any] = {"content": item["text"]} if item["text"] else {}
                    if not role_sent:
                        delta["role"] = "assistant"
                        role_sent = True
                    out = {**base, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": item["finish_reason"]}]}
                    yield b"data: " + json.dumps(out).encode() + b"\n\n"
                    item = await chunks.__anext__()
                yield b"data: [DONE]\n\n"
            finally:
                await chunks.aclose()  # a client gone mid-reply: stop generating

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return Starlette(routes=[Route("/health", health), Route("/v1/models", models),
                             Route("/v1/chat/completions", chat, methods=["POST"])])


def _exit_when_stdin_closes() -> None:
    """The parent holds our stdin: when it goes away (even killed), so do we."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a GGUF chat model file")
    parser.add_argument("--name", default="local", help="the model name it answers as")
    parser.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--ctx", type=int, default=2048, help="context window in tokens")
    parser.add_argument("--max-waiting", type=int, default=4, help="requests that may wait for the model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (reported on stdout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="llama_server: %(levelname)s %(message)s")
    threading.Thread(target=_exit_when_stdin_closes, name="stdin-watch", daemon=True).start()
    if not os.path.isfile(args.model):
        print(json.dumps({"ready": False, "error": f"model file {args.model!r} does not exist"}), flush=True)
        sys.exit(2)
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]

    async def serve() -> None:
        try:
            engine = ChatEngine.load(args.model, args.name, args.threads, args.ctx, args.max_waiting)
        except Exception as exc:  # llama.cpp raises ValueError for a file it cannot load
            print(json.dumps({"ready": False, "error": f"cannot load {args.model!r}: {exc}"}), flush=True)
            raise SystemExit(3) from None
        config = uvicorn.Config(build_app(engine), log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        sock.listen(64)
        server_task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not server_task.done():
            await asyncio.sleep(0.01)
        print(json.dumps({"ready": True, "port": port, "pid": os.getpid(), "model": args.name}), flush=True)
        await server_task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
