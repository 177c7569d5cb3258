"""WebRTC calls, as in OpenAI's Realtime WebRTC flow: `POST /v1/realtime/calls` with an SDP offer, the answer back.

One call is one Realtime session on the same loop and protocol as the WebSocket:

- the caller's microphone track (Opus, decoded by aiortc) is mixed to mono and fed to `session.push_pcm`;
- the agent's voice goes out on an audio track paced in 20 ms frames at 48 kHz (silence when idle): the
  session's output format is pinned to `audio/pcm` 48 kHz, and its `response.output_audio.delta` events are
  decoded onto the track instead of being sent as events;
- every other server event travels as JSON text on the `oai-events` DataChannel, and every text message on it
  is a client event, exactly as on `/v1/realtime`. Like OpenAI we add `output_audio_buffer.started|stopped|cleared`
  when playback starts, drains, or is flushed; a cancelled response (barge-in) or a client's
  `output_audio_buffer.clear` drops everything queued on the track at once.

A hang-up (`POST /v1/realtime/calls/{id}/hangup` or `DELETE`), ICE/DTLS failure, or the peer closing the
connection (a closed tab) ends the session and frees the peer connection, tasks and tracks.

ICE uses host candidates only unless `SOMAGENT_ICE_SERVERS` names STUN/TURN servers (a JSON list of URLs or
`{"urls", "username", "credential"}` objects, or comma-separated URLs); `GET /v1/realtime/webrtc_config`
hands the same list to the page.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from voice import events as ev
from voice.auth import AuthError, Principal, bearer
from voice.config import Settings
from voice.events import ServerEvent
from voice.ids import new_id
from voice.server import ServerBusy, VoiceServer
from voice.session import RealtimeSession
from voice.session_config import merge

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "oai-events"
OUTPUT_FORMAT = {"type": "audio/pcm", "rate": 48000}  # over WebRTC the agent's audio always travels on the track
TRACK_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
FRAME_S = FRAME_SAMPLES / TRACK_RATE
TIME_BASE = fractions.Fraction(1, TRACK_RATE)
MAX_SDP_BYTES = 128 * 1024
MAX_PENDING_EVENTS = 2000  # events held until the DataChannel opens
CONNECT_TIMEOUT_S = 30.0  # a call whose peer never connects is ended
CLOSE_TIMEOUT_S = 1.0
SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_SDP_LINE = re.compile(r"^[a-z]=.*$")


class CallError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def response(self) -> JSONResponse:
        response = error_response(self.status, self.code, self.message)
        response.headers.update(self.headers or {})
        return response


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": "invalid_request_error", "code": code, "message": message}},
                        status_code=status)


# -- settings -------------------------------------------------------------------------------------

def parse_ice_servers(text: str) -> list[dict[str, Any]]:
    """`SOMAGENT_ICE_SERVERS`: a JSON list (URLs or {urls, username, credential}) or comma-separated URLs."""
    text = (text or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"SOMAGENT_ICE_SERVERS is not valid JSON: {exc}") from None
    else:
        raw = [u.strip() for u in text.split(",") if u.strip()]
    servers = []
    for entry in raw:
        server = {"urls": entry} if isinstance(entry, str) else entry
        if not isinstance(server, dict) or "urls" not in server:
            raise ValueError(f"SOMAGENT_ICE_SERVERS entry {entry!r} needs 'urls'")
        urls = server["urls"] if isinstance(server["urls"], list) else [server["urls"]]
        for url in urls:
            if not isinstance(url, str) or not url.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"SOMAGENT_ICE_SERVERS: {url!r} is not a stun:, turn: or turns: URL")
        servers.append({k: v for k, v in server.items() if k in ("urls", "username", "credential")})
    return servers


def rtc_configuration(servers: list[dict[str, Any]]) -> RTCConfiguration:
    # An explicit list, even empty: aiortc falls back to a public STUN server when given None.
    return RTCConfiguration(iceServers=[RTCIceServer(**s) for s in servers])


# -- SDP checks -----------------------------------------------------------------------------------

def check_offer(sdp: str) -> None:
    """Refuse what is not an SDP offer with live audio, before aiortc sees it."""
    if not sdp or not sdp.strip():
        raise CallError(400, "invalid_sdp", "the request carries no SDP offer")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise CallError(400, "invalid_sdp", f"the SDP offer is larger than {MAX_SDP_BYTES} bytes")
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0].strip() != "v=0":
        raise CallError(400, "invalid_sdp", "malformed SDP: an offer starts with 'v=0'")
    bad = next((line for line in lines if not _SDP_LINE.match(line.strip())), None)
    if bad is not None:
        raise CallError(400, "invalid_sdp", f"malformed SDP line: {bad[:80]!r}")
    media = [line.split() for line in lines if line.startswith("m=")]
    if not media:
        raise CallError(400, "invalid_sdp", "malformed SDP: no media section")
    if not any(m[0] == "m=audio" and len(m) > 1 and m[1] != "0" for m in media):
        raise CallError(400, "no_audio", "the offer has no audio: add the microphone track (an m=audio section)")


async def read_offer(request: Request) -> tuple[str, dict[str, Any] | None]:
    """The offer SDP and the optional session object: raw application/sdp, or multipart with `sdp` + `session`."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=4, max_fields=8)
        except Exception as exc:  # starlette raises its own parser errors
            raise CallError(400, "invalid_request", f"could not parse the multipart body: {exc}") from None
        sdp = await _form_text(form.get("sdp"))
        if sdp is None:
            raise CallError(400, "invalid_sdp", "the multipart body has no 'sdp' part")
        raw_session = await _form_text(form.get("session"))
        session = None
        if raw_session is not None and raw_session.strip() not in ("", "null"):
            try:
                session = json.loads(raw_session)
            except json.JSONDecodeError as exc:
                raise CallError(400, "invalid_session", f"the 'session' part is not valid JSON: {exc}") from None
            if not isinstance(session, dict):
                raise CallError(400, "invalid_session", "the 'session' part must be a JSON object")
        return sdp, session
    if ctype in ("application/sdp", "text/plain", ""):
        body = await request.body()
        if len(body) > MAX_SDP_BYTES:
            raise CallError(400, "invalid_sdp", f"the SDP offer is larger than {MAX_SDP_BYTES} bytes")
        try:
            return body.decode("utf-8"), None
        except UnicodeDecodeError:
            raise CallError(400, "invalid_sdp", "the SDP offer is not UTF-8 text") from None
    raise CallError(415, "unsupported_media_type",
                    f"send the offer as application/sdp or multipart/form-data, not {ctype!r}")


async def _form_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, UploadFile):
        data = await value.read(MAX_SDP_BYTES + 1)
        if len(data) > MAX_SDP_BYTES:
            raise CallError(400, "invalid_sdp", f"a multipart part is larger than {MAX_SDP_BYTES} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise CallError(400, "invalid_request", "multipart parts must be UTF-8 text") from None
    return str(value)


# -- the agent's voice ----------------------------------------------------------------------------

class AgentAudioTrack(MediaStreamTrack):
    """The outbound track: queued 48 kHz PCM in 20 ms frames, paced in real time, silence when idle.

    `on_playback(type, response_id)` is told when playback of a response starts (`output_audio_buffer.started`)
    and when its audio has fully played (`output_audio_buffer.stopped`)."""

    kind = "audio"

    def __init__(self, on_playback: Callable[[str, str | None], None] | None = None) -> None:
        super().__init__()
        self._chunks: deque[tuple[str | None, np.ndarray]] = deque()
        self._offset = 0  # samples of the first chunk already played
        self.queued_samples = 0
        self._on_playback = on_playback
        self._playing: str | None = None
        self._finished: set[str | None] = set()
        self._start: float | None = None
        self._pts = 0
        self.frames_sent = 0
        self.audio_frames_sent = 0

    @property
    def playing(self) -> str | None:
        return self._playing

    def enqueue(self, response_id: str | None, pcm: np.ndarray) -> None:
        if len(pcm):
            self._chunks.append((response_id, np.asarray(pcm, dtype=np.int16)))
            self.queued_samples += len(pcm)

    def holds(self, response_id: str | None) -> bool:
        """Whether audio of this response is playing or queued."""
        return response_id is not None and (self._playing == response_id or any(r == response_id for r, _ in self._chunks))

    def finish(self, response_id: str | None) -> None:
        """No more audio is coming for this response: `stopped` follows once the queue has played out."""
        self._finished.add(response_id)

    def flush(self) -> str | None:
        """Drop everything queued (barge-in); returns the response that was playing or queued, if any."""
        current = self._playing if self._playing is not None else (self._chunks[0][0] if self._chunks else None)
        had_audio = self._playing is not None or bool(self._chunks)
        self._chunks.clear()
        self._offset = 0
        self.queued_samples = 0
        self._playing = None
        self._finished.clear()
        return current if had_audio else None

    def _notify(self, kind: str, response_id: str | None) -> None:
        if self._on_playback is not None:
            try:
                self._on_playback(kind, response_id)
            except Exception:  # a notification must never stop the audio
                log.exception("playback notification failed")

    def _take(self) -> np.ndarray:
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        filled = 0
        while filled < FRAME_SAMPLES and self._chunks:
            rid, chunk = self._chunks[0]
            if self._playing != rid:
                if self._playing is not None:
                    self._notify("output_audio_buffer.stopped", self._playing)
                self._playing = rid
                self._notify("output_audio_buffer.started", rid)
            n = min(FRAME_SAMPLES - filled, len(chunk) - self._offset)
            out[filled:filled + n] = chunk[self._offset:self._offset + n]
            filled += n
            self._offset += n
            self.queued_samples -= n
            if self._offset >= len(chunk):
                self._chunks.popleft()
                self._offset = 0
        if filled:
            self.audio_frames_sent += 1
        if not self._chunks and self._playing is not None and self._playing in self._finished:
            self._finished.discard(self._playing)
            self._notify("output_audio_buffer.stopped", self._playing)
            self._playing = None
        return out

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
            self._pts = 0
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / TRACK_RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        pcm = self._take()
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = TRACK_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self.frames_sent += 1
        return frame


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame (s16 or float, packed or planar, any channels) as mono int16."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        mono = data.mean(axis=0) if data.shape[0] > 1 else data[0]
    else:
        flat = data.reshape(-1)
        mono = flat.reshape(-1, channels).mean(axis=1) if channels > 1 else flat
    if np.issubdtype(mono.dtype, np.floating) and frame.format.name.startswith(("flt", "dbl")):
        mono = np.clip(mono * 32767.0, -32768, 32767)
    return np.asarray(mono).astype(np.int16)


# -- one call -------------------------------------------------------------------------------------

class Call:
    def __init__(self, registry: CallRegistry, principal: Principal, session: RealtimeSession) -> None:
        self.id = "rtc_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
        self.registry = registry
        self.principal = principal
        self.session = session
        self.pc = RTCPeerConnection(rtc_configuration(registry.ice_servers))
        self.track = AgentAudioTrack(self._on_playback)
        self.channel: Any = None
        self.created_at = time.time()
        self.connected_at: float | None = None
        self.closed = False
        self.close_reason: str | None = None
        self.frames_in = 0
        self.frames_dropped = 0
        self._pending: deque[str] = deque(maxlen=MAX_PENDING_EVENTS)
        self._item_response: dict[str, str | None] = {}  # assistant item -> its response, to match truncations
        self._inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task] = set()
        self._closing: asyncio.Task | None = None

    # -- setup ------------------------------------------------------------------------------
    async def answer(self, offer_sdp: str) -> str:
        pc = self.pc
        pc.on("connectionstatechange", self._on_state)
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError, InvalidStateError, ... for offers it cannot take
            raise CallError(400, "invalid_sdp", f"the SDP offer could not be applied: {exc}") from None
        if not any(t.kind == "audio" for t in pc.getTransceivers()):
            raise CallError(400, "no_audio", "the offer has no audio: add the microphone track (an m=audio section)")
        pc.addTrack(self.track)  # reuses the offer's audio transceiver: sendrecv
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            raise CallError(400, "invalid_sdp", f"no answer could be made for this offer: {exc}") from None
        self._spawn(self._write(), "writer")
        self._spawn(self._read(), "reader")
        self._spawn(self._watch_connect(), "connect-watch")
        return pc.localDescription.sdp

    def _spawn(self, coro: Any, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("call %s: connection %s", self.id, state)
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.time()
        elif state in ("failed", "closed"):
            self.close_soon(f"connection_{state}")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._pump_microphone(track), "microphone")

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label != EVENTS_CHANNEL or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", self._inbox.put_nowait)
        channel.on("close", lambda: self.close_soon("events_channel_closed"))
        while self._pending and channel.readyState == "open":
            channel.send(self._pending.popleft())

    async def _watch_connect(self) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT_S)
        if self.connected_at is None:
            log.info("call %s: the peer never connected", self.id)
            self.close_soon("connect_timeout")

    # -- media in ----------------------------------------------------------------------------
    async def _pump_microphone(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.frames_in += 1
            if not await self.session.push_pcm(frame_to_mono(frame), frame.sample_rate):
                self.frames_dropped += 1

    # -- events ------------------------------------------------------------------------------
    def send_event(self, event: ServerEvent) -> None:
        if event.event_id is None:
            event.event_id = new_id("event")
        text = json.dumps(event.to_wire(), separators=(",", ":"))
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            try:
                channel.send(text)
            except Exception as exc:  # the channel went away under us; the state handler ends the call
                log.debug("call %s: send failed: %s", self.id, exc)
        elif channel is None:
            self._pending.append(text)

    def _on_playback(self, kind: str, response_id: str | None) -> None:
        started = kind == "output_audio_buffer.started"
        self.send_event((ev.OutputAudioBufferStarted if started else ev.OutputAudioBufferStopped)(response_id=response_id))

    def _flush_audio(self) -> None:
        """Barge-in: nothing queued plays after the user interrupts."""
        response_id = self.track.flush()
        if response_id is not None:
            self.send_event(ev.OutputAudioBufferCleared(response_id=response_id))

    async def _write(self) -> None:
        """Session events: audio onto the track, everything else onto the DataChannel, in order."""
        try:
            while (event := await self.session.next_event()) is not None:
                if isinstance(event, ev.OutputAudioDelta):  # PCM16 at 24 kHz (the session's pinned format)
                    self.track.enqueue(event.response_id, np.frombuffer(event.audio, dtype="<i2"))
                    continue
                if isinstance(event, ev.OutputItemAdded):
                    self._item_response[event.item["id"]] = event.response_id
                elif isinstance(event, ev.OutputAudioDone):
                    self.track.finish(event.response_id)
                self.send_event(event)
                if isinstance(event, ev.ResponseDone):
                    if event.response.get("status") == "cancelled":
                        self._flush_audio()
                    if self.session.extensions:
                        self.send_event(self.metrics_event())
                elif isinstance(event, ev.ConversationItemTruncated) and self.track.holds(
                        self._item_response.get(event.item_id)):
                    # a barge-in after the reply was fully generated: no cancelled response.done comes, but the
                    # server has cut the item to what was played, so the rest must not play either
                    self._flush_audio()
        except Exception:
            log.exception("call %s: writer failed", self.id)
        self.close_soon("session_closed")

    async def _read(self) -> None:
        """Client events from the DataChannel, one at a time, in order."""
        while (message := await self._inbox.get()) is not None:
            if isinstance(message, bytes):
                self.session.error("binary_not_supported", "send events as JSON text messages, not binary")
                continue
            await self.session.handle_text(self._intercept(message))

    def _intercept(self, text: str) -> str:
        """The few client events the transport acts on before the session sees them."""
        try:
            event = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return text  # the session answers with its own error
        if not isinstance(event, dict):
            return text
        kind = event.get("type")
        if kind == "output_audio_buffer.clear":
            self.track.flush()  # at once; the session answers with output_audio_buffer.cleared
        elif kind == "session.update" and isinstance(event.get("session"), dict):
            audio = event["session"].get("audio")
            output = audio.get("output") if isinstance(audio, dict) else None
            if isinstance(output, dict) and "format" in output:
                output["format"] = dict(OUTPUT_FORMAT)  # over WebRTC the voice always travels on the track
                return json.dumps(event)
        return text

    # -- readout -----------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        turns = self.session.turns
        return {"barge_ins": turns.barge_ins, "false_barge_ins": turns.false_barge_ins,
                "echo_level_dbfs": round(turns.echo.echo_level(), 1), "user_turns": turns.user_turns,
                "frames_in": self.frames_in, "frames_dropped": self.frames_dropped,
                "frames_out": self.track.frames_sent, "audio_frames_out": self.track.audio_frames_sent}

    def metrics_event(self) -> ev.SessionMetrics:
        return ev.SessionMetrics(session_id=self.session.id, values=self.metrics())

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "object": "realtime.call", "session_id": self.session.id,
                "state": "closed" if self.closed else self.pc.connectionState, "created_at": int(self.created_at),
                "close_reason": self.close_reason, "metrics": self.metrics()}

    # -- teardown ----------------------------------------------------------------------------
    def close_soon(self, reason: str) -> asyncio.Task:
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(reason), name=f"{self.id}-close")
        return self._closing

    async def close(self, reason: str = "hangup") -> None:
        await asyncio.shield(self.close_soon(reason))

    async def _close(self, reason: str) -> None:
        self.close_reason = reason
        self.closed = True
        self.registry.calls.pop(self.id, None)
        log.info("call %s: closing (%s)", self.id, reason)
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        self._inbox.put_nowait(None)
        try:
            await self.registry.server.close_session(self.session)
        except Exception:
            log.exception("call %s: closing the session failed", self.id)
        self.track.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        try:
            await asyncio.wait_for(self.pc.close(), CLOSE_TIMEOUT_S)
        except Exception as exc:  # a timeout included: the call is gone either way
            log.warning("call %s: peer connection close: %r", self.id, exc)


# -- all calls ------------------------------------------------------------------------------------

class CallRegistry:
    def __init__(self, server: VoiceServer, ice_servers: list[dict[str, Any]]) -> None:
        self.server = server
        self.ice_servers = ice_servers
        self.calls: dict[str, Call] = {}

    def count_for(self, key_id: str) -> int:
        return sum(1 for c in self.calls.values() if c.principal.key_id == key_id)

    async def create(self, principal: Principal, offer_sdp: str, patch: dict[str, Any] | None,
                     model: str | None) -> tuple[Call, str]:
        check_offer(offer_sdp)
        limit = self.server.settings.max_calls_per_key
        if self.count_for(principal.key_id) >= limit:
            raise CallError(429, "too_many_calls", f"this key already has {limit} live calls (the limit); hang one up first")
        if patch is not None and patch.get("type", "realtime") != "realtime":
            raise CallError(400, "invalid_session", "only sessions of type 'realtime' are served here")
        wanted = merge(principal.session or {}, dict(patch or {}))
        wanted = merge(wanted, {"audio": {"output": {"format": dict(OUTPUT_FORMAT)}}})
        model = model or (wanted.pop("model", None) if isinstance(wanted.get("model"), str) else None)
        wanted.pop("type", None)
        try:
            session = await self.server.open_session(principal, model=model, patch=wanted, transport="webrtc")
        except ServerBusy as exc:
            raise CallError(503, exc.code, exc.message, {"Retry-After": str(exc.retry_after_s)}) from None
        except AuthError as exc:
            status = 400 if exc.code == "invalid_session" else 503
            raise CallError(status, exc.code, exc.message) from None
        call = Call(self, principal, session)
        self.calls[call.id] = call  # counts against the key's limit from now on
        try:
            answer = await call.answer(offer_sdp)
        except BaseException:
            await call.close("setup_failed")
            raise
        return call, answer

    async def aclose(self) -> None:
        calls = list(self.calls.values())
        await asyncio.gather(*(c.close("server_shutdown") for c in calls), return_exceptions=True)


def registry_for(app: FastAPI, ice_servers: list[dict[str, Any]] | None = None) -> CallRegistry:
    """The app's calls (`app.state.webrtc_calls`), made on first use."""
    registry = getattr(app.state, "webrtc_calls", None)
    if registry is None:
        registry = CallRegistry(app.state.server, ice_servers or [])
        app.state.webrtc_calls = registry
    return registry


async def close_calls(app: FastAPI) -> None:
    """App shutdown: end every call and close its peer connection."""
    registry = getattr(app.state, "webrtc_calls", None)
    if registry is not None:
        await registry.aclose()


# -- routes ---------------------------------------------------------------------------------------

def webrtc_routes(settings: Settings | None = None) -> APIRouter:
    """The call endpoints; raises ValueError at start-up when SOMAGENT_ICE_SERVERS is malformed."""
    ice_servers = parse_ice_servers((settings or Settings()).ice_servers)
    api = APIRouter()

    def _registry(request: Request) -> CallRegistry:
        return registry_for(request.app, ice_servers)

    def _auth(request: Request) -> Principal:
        server: VoiceServer = request.app.state.server
        try:
            return server.auth.check(bearer(request.headers))
        except AuthError as exc:
            raise CallError(401, exc.code, exc.message) from None

    @api.post("/v1/realtime/calls", status_code=201)
    async def create_call(request: Request) -> Response:
        try:
            principal = _auth(request)
            sdp, session = await read_offer(request)
            call, answer = await _registry(request).create(principal, sdp, session, request.query_params.get("model"))
        except CallError as exc:
            return exc.response()
        return Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": f"/v1/realtime/calls/{call.id}"})

    @api.get("/v1/realtime/webrtc_config")
    async def webrtc_config(request: Request) -> Response:
        try:
            _auth(request)
        except CallError as exc:
            return exc.response()
        return JSONResponse({"ice_servers": ice_servers, "events_channel": EVENTS_CHANNEL})

    @api.get("/v1/realtime/calls/{call_id}")
    async def get_call(call_id: str, request: Request) -> Response:
        try:
            _auth(request)
        except CallError as exc:
            return exc.response()
        call = _registry(request).calls.get(call_id)
        if call is None:
            return error_response(404, "call_not_found", f"no live call {call_id!r}")
        return JSONResponse(call.info())

    async def _hangup(call_id: str, request: Request) -> Response:
        try:
            _auth(request)
        except CallError as exc:
            return exc.response()
        call = _registry(request).calls.get(call_id)
        if call is None:
            return error_response(404, "call_not_found", f"no live call {call_id!r}")
        await call.close("hangup")
        return Response(status_code=200)

    api.add_api_route("/v1/realtime/calls/{call_id}/hangup", _hangup, methods=["POST"])
    api.add_api_route("/v1/realtime/calls/{call_id}", _hangup, methods=["DELETE"])
    return api
