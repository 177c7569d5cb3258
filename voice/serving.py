"""Run the app under uvicorn inside the current event loop (replay without --url, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

WS_PING_S = 20.0
WS_MAX_BYTES = 16 * 1024 * 1024  # beyond this uvicorn closes with 1009; below it the session answers with an error


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    # uvloop and httptools: the loop's own work (socket reads, pausing and resuming each WebSocket's reader per
    # message, callbacks) costs about a fifth less of the loop per audio append than asyncio's selector loop.
    # No permessage-deflate: audio travels as base64, which deflate barely shrinks, and inflating every 20 ms
    # append cost more of the loop than any other step but resampling. Clients that offer it fall back.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        ws_max_size=WS_MAX_BYTES,
        # pings find a client that vanished without a close (a laptop lid shut): its session ends, its slot frees
        ws_ping_interval=WS_PING_S,
        ws_ping_timeout=WS_PING_S,
        ws_per_message_deflate=False,
        lifespan="on",
    )


@asynccontextmanager
async def running_server(app: FastAPI, host: str = "127.0.0.1", port: int | None = None,
                         startup_timeout_s: float = 60.0) -> AsyncIterator[str]:
    """Yield the server's base URL (http://host:port) once it accepts connections."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn_config(app, host, port, log_level="warning"))
    task = asyncio.create_task(server.serve(), name="uvicorn")
    try:
        for _ in range(int(startup_timeout_s / 0.05)):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        if not server.started:
            if task.done() and task.exception():
                raise RuntimeError(f"server failed to start: {task.exception()!r}")
            raise RuntimeError("server did not start in time")
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
