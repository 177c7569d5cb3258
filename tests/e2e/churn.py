"""Connect/drop churn against a server in its own process, and what that process holds afterwards.

Four ways a client leaves (`KINDS`): idle after `session.created`; mid-utterance (speech appended, no commit); mid-
response (a reply asked for, the socket closed at its first delta); and an abrupt reset (TCP RST, no close frame).
`Footprint` is read from /proc: resident memory, open file descriptors, live child processes (espeak-ng, worker
processes), and the server's own count of sessions. Used by tests/e2e/test_churn.py (bounded) and
benchmarks/bench_churn.py (1000 cycles a round).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import websockets

from dsp import resample
from tests.helpers import speech
from voice.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("idle", "mid_utterance", "mid_response", "reset")
WAIT_S = 20.0  # any one step of a cycle; a bound, never a measured time


@dataclass(frozen=True)
class Footprint:
    rss_kb: int
    fds: int
    children: tuple[str, ...]
    sessions: int


@contextmanager
def churn_server(**env: str) -> Iterator[tuple[str, int]]:
    """`somagent-voice serve` with the embedded parts (espeak-ng, pocketsphinx, the embedded responder)."""
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="somagent-churn-")
    full = {**os.environ, "SOMAGENT_STACK": "light", "SOMAGENT_WARMUP": "0",
            "SOMAGENT_DATABASE_URL": f"sqlite:///{tmp}/router.db", "SOMAGENT_MAX_SESSIONS": "200",
            "SOMAGENT_AUDIO_VECTORS": f"{tmp}/vectors", **env}
    proc = subprocess.Popen([sys.executable, "-m", "voice", "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, env=full)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, "the server exited at start"
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def children(pid: int) -> list[tuple[int, str]]:
    """The process's live children: (pid, command line) each (the recogniser's workers stay; espeak-ng should not;
    a zombie's command line is empty)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            try:
                out.append((int(kid), Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()))
            except OSError:
                pass
    return sorted(out)


def footprint(url: str, pid: int) -> Footprint:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    sessions = httpx.get(url + "/healthz", timeout=10).json()["sessions"]
    return Footprint(rss, len(os.listdir(f"/proc/{pid}/fd")), tuple(sorted(cmd for _, cmd in children(pid))), sessions)


async def settled(url: str, pid: int, at_rest: Footprint | None = None, timeout_s: float = 30.0) -> Footprint:
    """The footprint once the server has no session left and no more children than `at_rest` (each session ends
    within moments of its socket); after `timeout_s` whatever it is."""
    deadline = time.monotonic() + timeout_s
    while True:
        fp = await asyncio.to_thread(footprint, url, pid)
        calm = fp.sessions == 0 and (at_rest is None or len(fp.children) <= len(at_rest.children))
        if calm or time.monotonic() > deadline:
            return fp
        await asyncio.sleep(0.1)


def _speech_appends() -> list[str]:
    pcm, rate = speech("goforward.wav")
    pcm24 = resample(pcm[: rate // 2], rate, 24000)  # half a second: the user is still talking
    chunks = [pcm24[i:i + 2400] for i in range(0, len(pcm24), 2400)]
    return [json.dumps({"type": "input_audio_buffer.append",
                        "audio": base64.b64encode(np.asarray(c, dtype=np.int16).tobytes()).decode()}) for c in chunks]


APPENDS = _speech_appends()
ASK = [json.dumps({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
    {"type": "input_text", "text": "Tell me about the weather today in some detail."}]}}),
       json.dumps({"type": "response.create"})]


async def cycle(ws_url: str, kind: str) -> bool:
    """One connection that leaves as `kind` says; False when the server refused it (`server_busy`: admission
    control, when recognition is this busy, is a way of leaving too)."""
    async with asyncio.timeout(WAIT_S):
        # max_queue=None: a client that closes with a reply still streaming in must read on to the close frame
        # (websockets stops reading once 16 messages wait unread, and the close then times out as 1006)
        ws = await websockets.connect(ws_url, max_size=None, max_queue=None, open_timeout=WAIT_S)
        try:
            first = json.loads(await ws.recv())
            if first["type"] == "error" and first["error"]["code"] == "server_busy":
                return False
            assert first["type"] == "session.created", first
            if kind == "mid_utterance":
                for text in APPENDS:
                    await ws.send(text)
            elif kind == "mid_response":
                for text in ASK:
                    await ws.send(text)
                while json.loads(await ws.recv())["type"] not in ("response.output_audio.delta",
                                                                 "response.output_audio_transcript.delta"):
                    pass
            elif kind == "reset":
                sock = ws.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                ws.transport.abort()  # RST: no close frame, no FIN
                return True
        finally:
            if kind != "reset":
                await ws.close()
    return True


async def churn(url: str, cycles: int, concurrency: int = 8) -> int:
    """`cycles` connections, the kinds in turn, `concurrency` at a time; returns how many the server refused."""
    ws_url = url.replace("http://", "ws://") + "/v1/realtime"
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(cycles):
        queue.put_nowait(KINDS[i % len(KINDS)])

    refused = 0

    async def worker() -> None:
        nonlocal refused
        while not queue.empty():
            if not await cycle(ws_url, queue.get_nowait()):
                refused += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return refused
