"""End-to-end plumbing: a real server on a loopback port, and collecting the events a client receives."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from voice.app import create_app
from voice.client import RealtimeClient
from voice.config import Settings
from voice.serving import free_port, uvicorn_config


@contextmanager
def server_thread(settings: Settings | None = None, router: Any = None) -> Iterator[str]:
    """A real uvicorn server in its own thread and event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn_config(create_app(settings or Settings(), router), "127.0.0.1", port, "warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300  # a cold numba cache compiles the dsp kernels at start
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


async def collect_until(client: RealtimeClient, predicate, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Receive events until one satisfies `predicate`; bounded by `timeout`."""
    events: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"timed out; last events: {[e['type'] for e in events[-15:]]}")
        ev = await client.recv(timeout=remaining)
        events.append(ev)
        if predicate(ev):
            return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]
