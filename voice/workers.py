"""`serve --workers N`: N server processes on one port, each with its own event loop.

Every session's audio path (WebSocket frames, base64, resampling, VAD, features, endpointing) runs on the
loop of the process that accepted it, and one loop fills at about 150 sessions of 20 ms appends on this
machine's cores (bench_load). N workers listen on the same port with SO_REUSEPORT, so the kernel spreads the
connections over them; this process only supervises: it reserves the port, starts worker 0 first (it
migrates the database and bootstraps the admin key alone), then the others, restarts one that dies, and
stops them all on SIGTERM or SIGINT. What the workers share they share through the database (router
configuration, events) or each other's Unix sockets (voice/siblings.py).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from voice.siblings import INTERNAL_HEADER, WorkerIdentity

log = logging.getLogger(__name__)

MAX_RESTARTS = 5  # within RESTART_WINDOW_S: beyond that a worker is failing at start, and so is the server
RESTART_WINDOW_S = 60.0


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port that other processes can bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def unix_socket(path: str) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    return sock


class Supervisor:
    def __init__(self, host: str, port: int, count: int, log_level: str, startup_timeout_s: float = 600.0) -> None:
        if count < 2:
            raise ValueError("a supervisor runs two or more workers")
        self.host, self.count, self.log_level = host, count, log_level
        self.startup_timeout_s = startup_timeout_s
        self._reserved = reuseport_socket(host, port)  # held (never listening) so the port stays ours
        self.port = self._reserved.getsockname()[1]
        self._dir = tempfile.TemporaryDirectory(prefix="somagent-workers-")
        self._token = secrets.token_urlsafe(24)
        self.procs: dict[int, subprocess.Popen] = {}
        self._restarts: list[float] = []
        self._stopping = False

    def identity(self, index: int) -> WorkerIdentity:
        return WorkerIdentity(index, self.count, self._dir.name, self._token)

    def _spawn(self, index: int) -> subprocess.Popen:
        env = {**os.environ, **self.identity(index).env()}
        env.setdefault("SOMAGENT_ROUTER_EVENT_POLL_S", "0.5")  # SQLite: follow the others' admin changes
        cmd = [sys.executable, "-m", "voice", "serve", "--host", self.host, "--port", str(self.port),
               "--log-level", self.log_level]
        proc = subprocess.Popen(cmd, env=env)
        self.procs[index] = proc
        log.info("worker %d started (pid %d)", index, proc.pid)
        return proc

    def _ready(self, index: int) -> bool:
        path = self.identity(index).socket_path()
        if not os.path.exists(path):
            return False
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=2.0) as client:
                r = client.get("http://worker/_internal/health", headers={INTERNAL_HEADER: self._token})
                return r.status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_ready(self, indices: list[int]) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        pending = list(indices)
        while pending:
            if self._stopping:
                raise RuntimeError("stopped while the workers were starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers {pending} did not start within {self.startup_timeout_s:.0f} s")
            for k in list(pending):
                if self.procs[k].poll() is not None:
                    raise RuntimeError(f"worker {k} exited at start (code {self.procs[k].returncode})")
                if self._ready(k):
                    pending.remove(k)
            time.sleep(0.2)

    def start(self) -> None:
        self._spawn(0)
        self._wait_ready([0])
        for k in range(1, self.count):
            self._spawn(k)
        self._wait_ready(list(range(1, self.count)))
        log.info("%d workers serving on http://%s:%d", self.count, self.host, self.port)

    def watch_once(self) -> bool:
        """Restart any worker that died; False once restarts come too fast to go on."""
        for k, proc in list(self.procs.items()):
            if self._stopping or proc.poll() is None:
                continue
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_S] + [now]
            if len(self._restarts) > MAX_RESTARTS:
                log.error("worker %d exited (code %s); %d restarts within %.0f s: stopping", k, proc.returncode,
                          MAX_RESTARTS, RESTART_WINDOW_S)
                return False
            log.warning("worker %d exited (code %s); restarting it", k, proc.returncode)
            self._spawn(k)
        return True

    def stop(self, grace_s: float = 30.0) -> None:
        self._stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reserved.close()
        self._dir.cleanup()


def supervise(host: str, port: int, count: int, log_level: str) -> int:
    """Run `count` workers until SIGTERM/SIGINT; the exit status of the server."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its readiness probes, once per worker start
    supervisor = Supervisor(host, port, count, log_level)
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True
        supervisor._stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status = 0
    try:
        supervisor.start()
        while not stop:
            if not supervisor.watch_once():
                status = 1
                break
            time.sleep(0.5)
    except RuntimeError as exc:
        log.error("%s", exc)
        status = 1
    finally:
        supervisor.stop()
    return status


def worker_sockets(me: WorkerIdentity, host: str, port: int) -> list[socket.socket]:
    """The shared public port and this worker's own Unix socket, for uvicorn to listen on."""
    Path(me.run_dir).mkdir(parents=True, exist_ok=True)
    return [reuseport_socket(host, port), unix_socket(me.socket_path())]
