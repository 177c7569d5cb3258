"""A Python WebRTC caller (aiortc) against an in-process server, for tests and the benchmark.

Run inside a network namespace (aiortc's ICE never offers 127.0.0.1), with the server bound to the namespace's
address; prints one line `RESULT <json>` with what each scenario saw:

    ip netns exec NS .venv/bin/python -m tests.e2e.webrtc.run_client --host 192.0.2.7 --scenarios conversation,bargein

Scenarios: conversation (speak a fixture, get the reply), bargein (speak over a long reply), clear (the client
sends output_audio_buffer.clear), tabclose (the peer vanishes without hanging up), sideband (an app server's
WebSocket on the call, `/v1/realtime?call_id=`), bench (voice-to-voice per file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import traceback
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from dsp import WebRtcVad, resample
from tests.helpers import SPEECH
from voice.app import create_app
from voice.capacity import CapacityLimits
from voice.client import load_audio, ws_url
from voice.config import Settings
from voice.serving import running_server
from voice.transports.webrtc.track import AgentAudioTrack, frame_to_mono

RATE = 48000
LOUD_RMS = 100.0  # about -50 dBFS: above this a received frame carries the agent's voice
LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog."] * 12)


def speech48(name: str) -> np.ndarray:
    pcm, rate = load_audio(SPEECH / name)
    return resample(pcm, rate, RATE)


def last_voiced_sample(pcm48: np.ndarray) -> int:
    """Index (at 48 kHz) just after the last 20 ms frame webrtcvad calls speech."""
    pcm16 = resample(pcm48, RATE, 16000)
    vad = WebRtcVad()
    last = 0
    for i in range(len(pcm16) // 320):
        if vad.is_speech(pcm16[i * 320:(i + 1) * 320]):
            last = (i + 1) * 320
    return last * 3


class MicTrack(AgentAudioTrack):
    """The caller's microphone: clips played on demand, silence otherwise; notes when a marked sample went out."""

    def __init__(self) -> None:
        super().__init__()
        self.enqueued_total = 0
        self._marks: list[tuple[int, str]] = []
        self.mark_times: dict[str, float] = {}
        self.sent_at: list[float] = []  # when each 20 ms frame left (index = frame number since the call began)

    def play(self, pcm: np.ndarray, marks: dict[str, int] | None = None) -> None:
        for name, offset in (marks or {}).items():
            self._marks.append((self.enqueued_total + offset, name))
        self.enqueued_total += len(pcm)
        self.enqueue("clip", pcm)

    async def recv(self):
        frame = await super().recv()
        sent = self.enqueued_total - self.queued_samples
        now = time.perf_counter()
        self.sent_at.append(now)
        for mark in [m for m in self._marks if m[0] <= sent]:
            self.mark_times[mark[1]] = now
            self._marks.remove(mark)
        return frame


CALLERS: list[Caller] = []  # closed after each scenario, whatever happened


def compact(ev: dict[str, Any]) -> dict[str, Any]:
    keep = ("type", "response_id", "transcript", "status", "status_details", "audio_end_ms", "id")
    out = {k: v for k, v in ev.items() if k in keep}
    if "response" in ev:
        out["response"] = {k: ev["response"].get(k) for k in ("id", "status", "status_details")}
    return out


class Caller:
    def __init__(self, base: str) -> None:
        CALLERS.append(self)
        self.base = base
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = MicTrack()
        self.channel: Any = None
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._cursor = 0
        self._changed = asyncio.Event()
        self.frames: list[tuple[float, float]] = []  # (arrival, rms) of each received frame
        self.call_id: str | None = None
        self.status: int | None = None
        self._tasks: list[asyncio.Task] = []

    async def connect(self, *, via_sdk: bool = False, session: dict[str, Any] | None = None) -> None:
        pc = self.pc
        pc.addTrack(self.mic)
        self.channel = pc.createDataChannel("oai-events")
        opened = asyncio.Event()
        self.channel.on("open", opened.set)
        self.channel.on("message", self._on_message)
        pc.on("track", lambda track: self._tasks.append(asyncio.create_task(self._listen(track))))
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        if via_sdk:  # what the official client sends: multipart sdp + session, Accept: application/sdp
            from openai import AsyncOpenAI
            client = AsyncOpenAI(base_url=self.base + "/v1", api_key="unused-in-developer-light")
            raw = await client.realtime.calls.with_raw_response.create(
                sdp=offer, session=session or {"type": "realtime"})
            self.status = raw.http_response.status_code
            location = raw.http_response.headers.get("location", "")
            answer = raw.http_response.text
            await client.close()
        else:
            async with httpx.AsyncClient(timeout=30) as http:
                r = await http.post(self.base + "/v1/realtime/calls", content=offer,
                                    headers={"Content-Type": "application/sdp"})
            self.status = r.status_code
            if r.status_code != 201:
                raise RuntimeError(f"POST /v1/realtime/calls: {r.status_code} {r.text}")
            location, answer = r.headers.get("location", ""), r.text
        self.call_id = location.rsplit("/", 1)[-1] or None
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await asyncio.wait_for(opened.wait(), 20)

    def _on_message(self, message: str | bytes) -> None:
        self.events.append((time.perf_counter(), json.loads(message)))
        self._changed.set()

    async def _listen(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = frame_to_mono(frame).astype(np.float64)
            self.frames.append((time.perf_counter(), float(np.sqrt(np.mean(pcm * pcm))) if len(pcm) else 0.0))

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    async def wait(self, pred, timeout: float = 30.0, *, anywhere: bool = False) -> tuple[float, dict[str, Any]]:
        """The next event (after the last one waited for, or any so far with `anywhere`) matching `pred`;
        bounded by `timeout`."""
        deadline = time.perf_counter() + timeout
        if anywhere:
            found = next(((at, e) for at, e in self.events if pred(e)), None)
            if found is not None:
                return found
        while True:
            while self._cursor < len(self.events):
                at, ev = self.events[self._cursor]
                self._cursor += 1
                if pred(ev):
                    return at, ev
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"no matching event; last: {[e['type'] for _, e in self.events[-12:]]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    async def wait_loud_frames(self, count: int, since: float, timeout: float = 20.0) -> None:
        deadline = time.perf_counter() + timeout
        while self.loud_frames(since) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {self.loud_frames(since)} loud frames arrived")
            await asyncio.sleep(0.02)

    def loud_frames(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for at, rms in self.frames if since <= at < until and rms > LOUD_RMS)

    def first_loud_after(self, since: float) -> float | None:
        return next((at for at, rms in self.frames if at >= since and rms > LOUD_RMS), None)

    def types(self) -> list[str]:
        return [e["type"] for _, e in self.events]

    async def info(self) -> dict[str, Any] | None:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{self.base}/v1/realtime/calls/{self.call_id}")
        return r.json() if r.status_code == 200 else None

    async def hangup(self) -> int:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{self.base}/v1/realtime/calls/{self.call_id}/hangup")
        return r.status_code

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.mic.stop()
        await self.pc.close()


async def live_sessions(base: str, settle_s: float = 5.0) -> int:
    """/healthz's session count, polled until it is zero or `settle_s` has passed."""
    deadline = time.perf_counter() + settle_s
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            n = (await http.get(base + "/healthz")).json()["sessions"]
            if n == 0 or time.perf_counter() > deadline:
                return n
            await asyncio.sleep(0.05)


def is_type(kind: str, **fields: Any):
    return lambda e: e.get("type") == kind and all(e.get(k) == v for k, v in fields.items())


def is_response_done(response_id: str):
    return lambda e: e.get("type") == "response.done" and e["response"]["id"] == response_id


# -- scenarios ------------------------------------------------------------------------------------

async def conversation(base: str, app) -> dict[str, Any]:
    c = Caller(base)
    await c.connect()
    out: dict[str, Any] = {"status": c.status, "call_id": c.call_id}
    _, created = await c.wait(is_type("session.created"))
    out["output_format"] = created["session"]["audio"]["output"]["format"]
    pcm24 = {"format": {"type": "audio/pcm", "rate": 24000}}
    c.send({"type": "session.update", "session": {"type": "realtime", "somagent": {"events": True},
                                                  "audio": {"output": pcm24}}})
    _, updated = await c.wait(is_type("session.updated"))
    out["output_format_after_update"] = updated["session"]["audio"]["output"]["format"]
    c.mic.play(speech48("goforward.wav"))
    _, final = await c.wait(is_type("conversation.item.input_audio_transcription.completed"), 40)
    out["user_transcript"] = final["transcript"]
    _, done = await c.wait(lambda e: e["type"] == "response.done", 60)
    out["response_status"] = done["response"]["status"]
    started_at, _ = next((at, e) for at, e in c.events if e["type"] == "output_audio_buffer.started")
    await c.wait(is_type("output_audio_buffer.stopped", response_id=done["response"]["id"]), 60)
    out["agent_transcript"] = next(e["transcript"] for _, e in c.events
                                   if e["type"] == "response.output_audio_transcript.done")
    out["loud_frames"] = c.loud_frames(started_at)
    out["frames_received"] = len(c.frames)
    out["call_info"] = await c.info()
    out["partials"] = sum(1 for t in c.types() if t == "somagent.input_audio_transcription.partial")
    out["event_types"] = sorted(set(c.types()))
    out["hangup_status"] = await c.hangup()
    out["sessions_after_hangup"] = await live_sessions(base)
    out["calls_after_hangup"] = len(app.state.webrtc_calls.calls)
    out["call_info_after_hangup"] = await c.info()
    await c.close()
    return out


async def _long_reply(c: Caller) -> tuple[float, str]:
    c.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                         "content": [{"type": "input_text", "text": LONG_TEXT}]}})
    c.send({"type": "response.create"})
    _, created = await c.wait(is_type("response.created"))
    started_at, _ = await c.wait(is_type("output_audio_buffer.started", response_id=created["response"]["id"]), 30)
    await c.wait_loud_frames(40, started_at)  # a good second of the reply has been heard
    return started_at, created["response"]["id"]


async def bargein(base: str, app) -> dict[str, Any]:
    c = Caller(base)
    await c.connect(via_sdk=True, session={"type": "realtime", "somagent": {"events": True},
                                           "instructions": "Answer briefly."})
    out: dict[str, Any] = {"status": c.status, "call_id": c.call_id}
    _, created = await c.wait(is_type("session.created"))
    out["session_from_multipart"] = {"somagent": created["session"].get("somagent"),
                                     "instructions": created["session"]["instructions"],
                                     "output_format": created["session"]["audio"]["output"]["format"]}
    started_at, rid = await _long_reply(c)
    c.mic.play(speech48("goforward.wav"))
    # the reply may be fully generated already (completed) or still running (cancelled, turn_detected)
    cleared_at, cleared = await c.wait(is_type("output_audio_buffer.cleared"), 30)
    _, done = await c.wait(is_response_done(rid), 10, anywhere=True)
    out["response_status"] = done["response"]["status"]
    out["status_details"] = done["response"]["status_details"]
    out["cleared_response_id_matches"] = cleared["response_id"] == rid
    await asyncio.sleep(1.0)
    nxt = next((at for at, e in c.events if e["type"] == "output_audio_buffer.started" and at > cleared_at), None)
    out["loud_frames_after_clear"] = c.loud_frames(cleared_at + 0.1, min(cleared_at + 1.0, nxt or float("inf")))
    out["loud_frames_before_clear"] = c.loud_frames(started_at, cleared_at)
    reply = next(e["transcript"] for _, e in c.events
                 if e["type"] == "response.output_audio_transcript.done" and e["response_id"] == rid)
    out["reply_words"] = len(reply.split())
    out["truncated"] = [compact(e) | {"item_id": e["item_id"]} for _, e in c.events
                        if e["type"] == "conversation.item.truncated"]
    out["reply_item_id"] = next(e["item"]["id"] for _, e in c.events
                                if e["type"] == "response.output_item.added" and e["response_id"] == rid)
    _, final = await c.wait(is_type("conversation.item.input_audio_transcription.completed"), 30, anywhere=True)
    out["user_transcript"] = final["transcript"]
    out["call_info"] = await c.info()
    out["hangup_status"] = await c.hangup()
    out["sessions_after_hangup"] = await live_sessions(base)
    await c.close()
    return out


async def clear(base: str, app) -> dict[str, Any]:
    c = Caller(base)
    await c.connect()
    out: dict[str, Any] = {"status": c.status}
    await c.wait(is_type("session.created"))
    started_at, rid = await _long_reply(c)
    c.send({"type": "output_audio_buffer.clear", "event_id": "evt_clear"})
    cleared_at, _ = await c.wait(is_type("output_audio_buffer.cleared"), 10, anywhere=True)
    _, done = await c.wait(is_response_done(rid), 10, anywhere=True)
    out["response_status"] = done["response"]["status"]
    out["status_details"] = done["response"]["status_details"]
    await asyncio.sleep(1.0)
    out["cleared_events"] = sum(1 for t in c.types() if t == "output_audio_buffer.cleared")
    out["truncated"] = sum(1 for t in c.types() if t == "conversation.item.truncated")
    out["loud_frames_after_clear"] = c.loud_frames(cleared_at + 0.1, cleared_at + 1.0)
    out["loud_frames_before_clear"] = c.loud_frames(started_at, cleared_at)
    out["hangup_status"] = await c.hangup()
    out["sessions_after_hangup"] = await live_sessions(base)
    await c.close()
    return out


async def tabclose(base: str, app) -> dict[str, Any]:
    """The peer goes away without a hang-up request (a closed tab): the server must notice and free the call."""
    c = Caller(base)
    await c.connect()
    await c.wait(is_type("session.created"))
    out: dict[str, Any] = {"sessions_while_connected": len(app.state.server.sessions)}
    await c.close()
    out["sessions_after_close"] = await live_sessions(base, settle_s=10.0)
    out["calls_after_close"] = len(app.state.webrtc_calls.calls)
    return out


async def _sideband_until(sb: Any, pred, timeout: float = 30.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not got or not pred(got[-1]):
            got.append(json.loads(await sb.recv()))
    return got


def is_update(instructions: str):
    return lambda e: e.get("type") == "session.updated" and e["session"]["instructions"] == instructions


async def sideband(base: str, app) -> dict[str, Any]:
    """An app server attaches to the browser's call: each sees what the other changes, the server starts a reply
    the browser hears, and the sideband ends with the call, not the call with the sideband."""
    c = Caller(base)
    await c.connect()
    await c.wait(is_type("session.created"))
    out: dict[str, Any] = {}
    url = f"{ws_url(base)}?call_id={c.call_id}"
    async with websockets.connect(url, max_size=None) as sb:
        c.send({"type": "session.update", "session": {"type": "realtime", "instructions": "From the browser."}})
        first = json.loads(await asyncio.wait_for(sb.recv(), 30))
        out["sideband_first"] = {"type": first["type"], "instructions": first.get("session", {}).get("instructions")}
        await sb.send(json.dumps({"type": "session.update",
                                  "session": {"type": "realtime", "instructions": "From the server."}}))
        _, updated = await c.wait(is_update("From the server."))
        out["browser_saw_server_update"] = updated["session"]["instructions"]
        await sb.send(json.dumps({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello."}]}}))
        await sb.send(json.dumps({"type": "response.create"}))
        events = await _sideband_until(sb, lambda e: e["type"] == "response.done", 60)
        rid = events[-1]["response"]["id"]
        out["response_status"] = events[-1]["response"]["status"]
        _, done = await c.wait(is_response_done(rid), 30, anywhere=True)
        out["browser_saw_response"] = done["response"]["status"]
        started_at, _ = await c.wait(is_type("output_audio_buffer.started", response_id=rid), 30, anywhere=True)
        await c.wait(is_type("output_audio_buffer.stopped", response_id=rid), 60, anywhere=True)
        events += await _sideband_until(sb, is_type("output_audio_buffer.stopped", response_id=rid), 30)
        out["loud_frames"] = c.loud_frames(started_at)
        out["sideband_types"] = sorted({e["type"] for e in events})
    c.send({"type": "session.update", "session": {"type": "realtime", "instructions": "After the sideband."}})
    await c.wait(is_update("After the sideband."))
    out["call_after_sideband_close"] = (await c.info())["state"]
    async with websockets.connect(url, max_size=None) as sb:
        await sb.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "Again."}}))
        await _sideband_until(sb, is_update("Again."))
        out["hangup_status"] = await c.hangup()
        try:
            async with asyncio.timeout(30):
                while True:
                    await sb.recv()
        except websockets.ConnectionClosed as exc:
            out["sideband_close"] = {"code": exc.rcvd.code if exc.rcvd else None,
                                     "reason": exc.rcvd.reason if exc.rcvd else None}
    out["sessions_after_hangup"] = await live_sessions(base)
    await c.close()
    return out


async def bench(base: str, app, files: list[str]) -> dict[str, Any]:
    """Voice-to-voice on the caller's clock, per file: from the moment the last voiced 20 ms of the clip left the
    microphone track to the first loud frame of the reply on the received track. The reply is then cleared
    (output_audio_buffer.clear) so the next file follows without waiting for the whole answer to play."""
    c = Caller(base)
    await c.connect()
    await c.wait(is_type("session.created"))
    c.send({"type": "session.update", "session": {"type": "realtime", "somagent": {"events": True}}})
    await c.wait(is_type("session.updated"))
    turns = []
    for name in files:
        pcm = speech48(name)
        mark = f"{name}-{len(turns)}"
        c.mic.play(np.concatenate([pcm, np.zeros(RATE // 2, np.int16)]), marks={mark: last_voiced_sample(pcm)})
        _, stopped = await c.wait(is_type("input_audio_buffer.speech_stopped"), 60)
        _, created = await c.wait(is_type("response.created"), 60)
        rid = created["response"]["id"]
        started_at, _ = await c.wait(is_type("output_audio_buffer.started", response_id=rid), 30)
        deadline = time.perf_counter() + 10
        while (first := c.first_loud_after(max(started_at - 0.5, c.mic.mark_times.get(mark, 0.0)))) is None:
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.01)
        c.send({"type": "output_audio_buffer.clear"})
        await c.wait(is_response_done(rid), 30, anywhere=True)
        try:
            _, metrics = await c.wait(is_type("somagent.turn.metrics", response_id=rid), 5, anywhere=True)
        except TimeoutError:
            metrics = {}
        sent = c.mic.mark_times.get(mark)
        # the frame that ends at the server's audio_end_ms (the server counts audio from the call's first frame)
        end_frame = stopped["audio_end_ms"] // 20 - 1
        end_sent = c.mic.sent_at[end_frame] if 0 <= end_frame < len(c.mic.sent_at) else None
        turns.append({"file": name,
                      "client_v2v_ms": None if first is None or sent is None else round((first - sent) * 1000, 1),
                      "client_v2v_from_audio_end_ms": None if first is None or end_sent is None
                      else round((first - end_sent) * 1000, 1),
                      "server_v2v_ms": metrics.get("voice_to_voice_ms")})
        while c.mic.queued_samples:  # the clip's trailing silence
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
    await c.hangup()
    await c.close()
    return {"turns": turns}


SCENARIOS = {"conversation": conversation, "bargein": bargein, "clear": clear, "tabclose": tabclose,
             "sideband": sideband}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(capacity=CapacityLimits(measured=False))  # the callers share the server's loop
    if args.silence_ms:
        settings = replace(settings, default_silence_ms=args.silence_ms)
    app = create_app(settings)
    results: dict[str, Any] = {}
    async with running_server(app, host=args.host) as base:
        for name in [s for s in args.scenarios.split(",") if s]:
            try:
                if name == "bench":
                    results[name] = await asyncio.wait_for(bench(base, app, args.files.split(",")), args.timeout)
                else:
                    results[name] = await asyncio.wait_for(SCENARIOS[name](base, app), args.timeout)
            except Exception as exc:
                results[name] = {"error": f"{exc!r}", "traceback": traceback.format_exc()[-2000:]}
                if args.debug and CALLERS:
                    results[name]["events"] = [compact(e) for _, e in CALLERS[-1].events]
            finally:
                for caller in CALLERS:
                    await caller.close()
                CALLERS.clear()
        results["sessions_at_end"] = len(app.state.server.sessions)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--scenarios", default="conversation")
    parser.add_argument("--files", default="goforward.wav")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--silence-ms", type=int, default=0)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
