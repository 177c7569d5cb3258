"""One call: a peer connection whose tracks and DataChannel carry one Realtime session."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from adapters.aio import TaskSet
from voice import events as ev
from voice.api_errors import ApiError
from voice.auth import Principal
from voice.events import ServerEvent
from voice.ids import new_id
from voice.session import RealtimeSession
from voice.transports.webrtc.ice import rtc_configuration
from voice.transports.webrtc.sideband import Sideband
from voice.transports.webrtc.track import AgentAudioTrack, frame_to_mono

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "oai-events"
MAX_PENDING_EVENTS = 2000  # events held until the DataChannel opens
CONNECT_TIMEOUT_S = 30.0  # a call whose peer never connects is ended
CLOSE_TIMEOUT_S = 1.0


class Call:
    """One peer connection carrying one session; it ends (`close_soon`) on hang-up, failure or a silent peer."""

    def __init__(self, principal: Principal, session: RealtimeSession, *, ice_servers: list[dict[str, Any]],
                 on_closed: Callable[[Call], Awaitable[None]], id_prefix: str = "rtc_") -> None:
        self.id = id_prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
        self.principal = principal
        self.session = session
        self._on_closed = on_closed  # the registry forgets the call and closes its session
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
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
        self.sidebands: set[Sideband] = set()  # attached sideband sockets: each gets what the DataChannel gets
        self._tasks = TaskSet()  # writer, reader, connect watch, microphone: all stopped by _close
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
            raise ApiError(400, "invalid_sdp", f"the SDP offer could not be applied: {exc}") from None
        if not any(t.kind == "audio" for t in pc.getTransceivers()):
            raise ApiError(400, "no_audio", "the offer has no audio: add the microphone track (an m=audio section)")
        pc.addTrack(self.track)  # reuses the offer's audio transceiver: sendrecv
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            raise ApiError(400, "invalid_sdp", f"no answer could be made for this offer: {exc}") from None
        self._spawn(self._write(), "writer")
        self._spawn(self._read(), "reader")
        self._spawn(self._watch_connect(), "connect-watch")
        return pc.localDescription.sdp

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task:
        return self._tasks.create_task(coro, name=f"{self.id}-{name}")

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("call %s: connection %s", self.id, state)
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.time()
        elif state in ("failed", "closed"):
            self.close_soon(f"connection_{state}")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self.closed:  # a track that arrives as the call ends is not read
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
    def attach_sideband(self) -> Sideband:
        """A sideband socket's queue of this call's events from now on (voice/transports/webrtc/sideband.py)."""
        sideband = Sideband()
        self.sidebands.add(sideband)
        return sideband

    def detach_sideband(self, sideband: Sideband) -> None:
        self.sidebands.discard(sideband)

    def send_event(self, event: ServerEvent) -> None:
        """One event for the DataChannel, and each sideband: serialised once, the same text for all; an error
        answering one connection's event goes to that connection only (`ev.set_event_source`)."""
        if event.event_id is None:
            event.event_id = new_id("event")
        text = json.dumps(event.to_wire(), separators=(",", ":"))
        source = event.source if isinstance(event, ev.Error) else None
        if source is not None and source is not self:
            if source in self.sidebands:
                source.put(text)  # type: ignore[attr-defined]
            return
        if source is None:
            for sideband in self.sidebands:
                sideband.put(text)
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
        event = ev.OutputAudioBufferStarted if started else ev.OutputAudioBufferStopped
        self.send_event(event(response_id=response_id))

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
        """Client events from the DataChannel, one at a time, in order; the errors they cause go back to it
        alone (`ev.set_event_source`), not to the sidebands."""
        ev.set_event_source(self)
        while (message := await self._inbox.get()) is not None:
            if isinstance(message, bytes):
                self.session.error("binary_not_supported", "send events as JSON text messages, not binary")
                continue
            await self.session.handle_text(message)

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
                "close_reason": self.close_reason, "sidebands": len(self.sidebands), "metrics": self.metrics()}

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
        log.info("call %s: closing (%s)", self.id, reason)
        self._inbox.put_nowait(None)
        await self._tasks.aclose()  # never this task: close_soon starts it outside the set
        for sideband in self.sidebands:  # the writer is stopped: no event follows, each closes once it has sent all
            sideband.end()
        try:
            await self._on_closed(self)
        except Exception:
            log.exception("call %s: closing the session failed", self.id)
        self.track.stop()
        try:
            await asyncio.wait_for(self.pc.close(), CLOSE_TIMEOUT_S)
        except Exception as exc:  # a timeout included: the call is gone either way
            log.warning("call %s: peer connection close: %r", self.id, exc)
