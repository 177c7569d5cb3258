"""The load generator of `bench_load`, run in its own process: N WebSocket sessions streaming real speech in real
time (24 kHz `audio/pcm`, 20 ms appends) against a server, one JSON result on stdout.

Every session streams the same track (speech files, each followed by silence) from a random start delay, so
speech overlaps at random. Messages are built once; one ticker sends every session its next chunk each 20 ms
and records when. VAD works in audio time, so where `speech_stopped` fires is known exactly from a
calibration run (`--calibrate`: one session at full speed); under load each expected event is matched and its
lag measured: arrival minus the send time of the chunk that completed its silence window.

`--mode ingest`: transcription null, no responses. `--mode talking`: the server's defaults (transcription
and responses on); the track is speech then as much silence, and the lag of interest is end of speech to
the final transcript.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import random
import resource
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import websockets

from voice.client import load_audio, ws_url

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "fixtures" / "audio" / "speech"
RATE = 24000
CHUNK = RATE // 50  # 20 ms
SILENCE_MS = 300
FILES = ["goforward.wav", "cards-001.wav", "cards-002.wav", "cards-003.wav", "librivox-0870.wav"]


def build_track(mode: str, seconds: float) -> np.ndarray:
    """Speech files in turn, each followed by silence (1.2 s, or as long as the speech when talking)."""
    from dsp import resample

    parts, total = [], 0
    i = 0
    while total < seconds * RATE:
        pcm, rate = load_audio(SPEECH / FILES[i % len(FILES)])
        pcm = resample(pcm, rate, RATE)
        gap = len(pcm) if mode == "talking" else int(1.2 * RATE)
        seg = np.concatenate([pcm, np.zeros(gap, np.int16)])
        seg = np.concatenate([seg, np.zeros((-len(seg)) % CHUNK, np.int16)])  # whole chunks: one alignment
        parts.append(seg)
        total += len(seg)
        i += 1
    return np.concatenate(parts)[: int(seconds * RATE) // CHUNK * CHUNK]


def append_messages(track: np.ndarray) -> list[str]:
    """The track as `input_audio_buffer.append` events of one 20 ms chunk each, built once."""
    return [json.dumps({"type": "input_audio_buffer.append",
                        "audio": base64.b64encode(track[i:i + CHUNK].astype("<i2").tobytes()).decode()})
            for i in range(0, len(track), CHUNK)]


def masked_frames(messages: list[str], seed: int = 7) -> list[bytes]:
    """Each message as a complete client text frame (FIN, masked, RFC 6455), built once and written to each
    session's socket as it is: the generator then spends ~2 us per send instead of ~15 us framing and masking
    each anew, and leaves the machine's cores to the server it measures. Each chunk has its own mask key, shared
    by the sessions (a browser must not do this; on loopback no intermediary can be confused by it)."""
    rng = np.random.default_rng(seed)
    frames = []
    for text in messages:
        payload = text.encode()
        n = len(payload)
        if n < 126:
            header = bytes([0x81, 0x80 | n])
        elif n < 65536:
            header = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
        key = rng.integers(0, 256, 4, dtype=np.uint8)
        data = np.frombuffer(payload, np.uint8) ^ np.resize(key, n)
        frames.append(header + key.tobytes() + data.tobytes())
    return frames


def session_update(mode: str) -> str:
    session: dict = {"type": "realtime", "somagent": {"events": True},
                     "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS}}}}
    if mode == "ingest":
        session["audio"]["input"]["transcription"] = None
        session["audio"]["input"]["turn_detection"]["create_response"] = False
    return json.dumps({"type": "session.update", "session": session})


class Session:
    def __init__(self, idx: int, delay_s: float) -> None:
        self.idx = idx
        self.delay_s = delay_s
        self.ws = None
        self.refused: str | None = None
        self.failed: str | None = None
        self.next_chunk = 0
        self.sent: list[float] = []
        self.stops: list[tuple[int, float, str]] = []  # (audio_end_ms, arrival, item_id)
        self.finals: list[tuple[str, float]] = []  # (item_id, arrival)
        self.metrics: list[dict] = []
        self.first_audio_after_stop: list[float] = []
        self._awaiting_audio_since: float | None = None
        self.errors: list[str] = []
        self.done = False

    async def read(self) -> None:
        try:
            async for message in self.ws:
                now = time.perf_counter()
                if message.startswith('{"type":"response.output_audio.delta"'):
                    if self._awaiting_audio_since is not None:
                        self.first_audio_after_stop.append(now - self._awaiting_audio_since)
                        self._awaiting_audio_since = None
                    continue
                ev = json.loads(message)
                kind = ev["type"]
                if kind == "input_audio_buffer.speech_stopped":
                    self.stops.append((ev["audio_end_ms"], now, ev["item_id"]))
                    self._awaiting_audio_since = now
                elif kind == "conversation.item.input_audio_transcription.completed":
                    self.finals.append((ev["item_id"], now))
                elif kind == "somagent.turn.metrics":
                    self.metrics.append(ev)
                elif kind == "error":
                    self.errors.append(ev["error"].get("code") or "?")
        except websockets.ConnectionClosed:
            pass


async def _open(url: str, s: Session, mode: str) -> None:
    await asyncio.sleep(s.delay_s)
    try:
        ws = await websockets.connect(ws_url(url), max_size=None, open_timeout=20, ping_interval=None)
        first = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if first["type"] != "session.created":
            s.refused = first.get("error", {}).get("code", "?")
            await ws.close()
            return
        await ws.send(session_update(mode))
    except Exception as exc:  # a handshake that timed out or was dropped: a failure, reported
        s.failed = f"{type(exc).__name__}: {exc}"[:200]
        return
    s.ws = ws  # the ticker streams from now on


async def _probe_health(url: str, until: float, out: dict) -> None:
    """/healthz every 0.5 s: its answer time, and the server's own loop-lag and busy readings (each worker's)."""
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            try:
                body = (await http.get("/healthz")).json()
                out["health_ms"].append((time.perf_counter() - t0) * 1000)
                for worker in body.get("workers") or [body]:  # `serve --workers N`: every worker's own readings
                    if "load" not in worker:
                        out["health_failures"] += 1
                        continue
                    out["loop_lag_max_ms"] = max(out["loop_lag_max_ms"], worker["load"]["loop_lag_max_ms"])
                    out["loop_busy_max"] = max(out["loop_busy_max"], worker["load"]["loop_busy"])
                    out["asr_busy_max"] = max([out["asr_busy_max"], *worker["load"]["asr_busy"].values()])
                out["not_ready"] += int(not body["ready"])
            except Exception:
                out["health_failures"] += 1
            await asyncio.sleep(0.5)


async def run(url: str, n: int, mode: str, seconds: float, ramp_s: float, seed: int) -> dict:
    rng = random.Random(seed)
    track = build_track(mode, seconds)
    messages = masked_frames(append_messages(track))
    sessions = [Session(i, rng.uniform(0, ramp_s)) for i in range(n)]
    health = {"health_ms": [], "health_failures": 0, "loop_lag_max_ms": 0.0, "loop_busy_max": 0.0, "not_ready": 0,
              "asr_busy_max": 0.0}
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    opener = [asyncio.create_task(_open(url, s, mode)) for s in sessions]
    prober = asyncio.create_task(_probe_health(url, wall0 + ramp_s + seconds + 3, health))
    readers: list[asyncio.Task] = []
    late_ticks = 0
    tick = wall0
    while True:  # bounded: every session stops after len(messages) chunks
        tick += 0.02
        delay = tick - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.02:
            late_ticks += 1
        active = False
        for s in sessions:
            if s.ws is None or s.done:
                if not s.done and (s.refused or s.failed):
                    s.done = True
                active = active or not s.done
                continue
            if not s.sent:
                readers.append(asyncio.create_task(s.read()))
            if s.ws.state is not websockets.protocol.State.OPEN:
                s.failed, s.done = "closed while streaming", True
                continue
            s.ws.transport.write(messages[s.next_chunk])
            s.sent.append(time.perf_counter())
            s.next_chunk += 1
            if s.next_chunk == len(messages):
                s.done = True
            active = active or not s.done
        if not active and all(t.done() for t in opener):
            break
    await asyncio.sleep(3.0)  # the last replies and events
    for s in sessions:
        if s.ws is not None:
            await s.ws.close()
    await asyncio.gather(*readers, prober, *opener, return_exceptions=True)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - wall0
    out = {
        "n": n, "mode": mode, "wall_s": round(wall, 2),
        "client_cpu_cores": round((cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / wall, 3),
        "late_ticks": late_ticks, "ticks": len(messages),
        "admitted": sum(1 for s in sessions if s.sent), "refused": sum(1 for s in sessions if s.refused),
        "refused_codes": sorted({s.refused for s in sessions if s.refused}),
        "failed": sum(1 for s in sessions if s.failed),
        "failures": sorted({s.failed for s in sessions if s.failed})[:3],
        "errors": sorted({e for s in sessions for e in s.errors}),
        **{k: v for k, v in health.items() if k != "health_ms"},
        "health_max_ms": round(max(health["health_ms"], default=float("nan")), 1),
        "sessions": [{"stops": s.stops, "sent": s.sent, "finals": s.finals,
                      "metrics": s.metrics, "first_audio_s": s.first_audio_after_stop} for s in sessions if s.sent],
    }
    return out


async def calibrate(url: str, mode: str, seconds: float) -> list[int]:
    """Where speech_stopped fires on the track (audio_end_ms), from one session at full speed."""
    track = build_track(mode, seconds)
    async with websockets.connect(ws_url(url), max_size=None, open_timeout=20) as ws:
        await ws.recv()
        await ws.send(session_update("ingest"))
        for message in append_messages(np.concatenate([track, np.zeros(RATE, np.int16)])):  # + 1 s: the last window
            await ws.send(message)
        stops: list[int] = []
        limit = math.ceil(len(track) / RATE) + 10
        try:
            while True:
                ev = json.loads(await asyncio.wait_for(ws.recv(), 3.0 if stops else limit))
                if ev["type"] == "input_audio_buffer.speech_stopped":
                    stops.append(ev["audio_end_ms"])
        except asyncio.TimeoutError:
            pass
    return [s for s in stops if s + SILENCE_MS <= len(track) * 1000 // RATE]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--mode", choices=["ingest", "talking"], default="ingest")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    if args.calibrate:
        result = {"stops": asyncio.run(calibrate(args.url, args.mode, args.seconds))}
    else:
        result = asyncio.run(run(args.url, args.n, args.mode, args.seconds, args.ramp, args.seed))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
