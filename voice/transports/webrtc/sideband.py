"""The sideband: a second WebSocket on a live call's session, `/v1/realtime?call_id=rtc_...`, as in OpenAI's
server-side controls.

The browser holds the call; the app server, which holds the API key and the business logic (instructions,
tools), attaches to the same session. From the moment it attaches the sideband receives what the call's
DataChannel receives: every server event except the agent's audio, which travels on the call's track (OpenAI
sends no audio deltas to a WebRTC call's sideband either), and with the track's `output_audio_buffer.*` events.
Nothing is sent on attaching: the session exists already, so there is no `session.created` (OpenAI sends none;
clients send a `session.update` and read its `session.updated`). Client events from the sideband are handled
by the call's session, exactly as the DataChannel's are; an `error` answering one goes to the connection that
sent it, not to the others.

Closing the sideband leaves the call up; the call ending closes the sideband (1000). Each sideband has its own
bounded queue of the call's serialised events: one that falls MAX_BEHIND events behind is closed with an
`error` (`sideband_overflow`, 1008), so a slow reader never holds the call's memory or pace; a call takes
MAX_PER_CALL sidebands at once.

Only the call's tenant attaches: any of its API keys (the one that created the call, or minted the client secret
that did, or another of the same tenant's). Another tenant's key and an id that is no live call get the same
`call_not_found` (1008): no tenant learns of another's calls. A client secret cannot attach at all: it is the
browser's credential, the sideband is the server's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect

from adapters.aio import TaskSet
from voice.auth import Principal
from voice.events import set_event_source
from voice.transports.reader import read_client_events
from voice.transports.refusal import NORMAL, POLICY_VIOLATION, TRY_AGAIN_LATER, close, refuse

if TYPE_CHECKING:
    from voice.transports.webrtc.call import Call

MAX_BEHIND = 2000  # events queued for one sideband; a burst of deltas is a few hundred
MAX_PER_CALL = 4  # sidebands on one call at once: each holds up to MAX_BEHIND events
FAREWELL_S = 5.0  # the overflow error and close, to a client that may not be reading at all


class Sideband:
    """One attached socket's share of the call's events: the call puts each event's JSON text, the socket's
    writer takes them in order."""

    def __init__(self, limit: int = MAX_BEHIND) -> None:
        self.limit = limit
        self._items: deque[str] = deque()
        self._ready = asyncio.Event()
        self.ended = False
        self.overflowed = False

    def put(self, text: str) -> None:
        """The call's hot path, once per event: never blocks, never holds more than `limit` events."""
        if self.ended:
            return
        if len(self._items) >= self.limit:
            self.overflowed = True
            self._items.clear()  # the socket is closed with an error; what it missed is not sent
            self.end()
            return
        self._items.append(text)
        self._ready.set()

    def end(self) -> None:
        """No more events (the call ended): what is queued is still delivered, then `get` says None."""
        self.ended = True
        self._ready.set()

    async def get(self) -> str | None:
        while not self._items:  # each pass waits for one put or the end
            if self.ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


def find_call(ws: WebSocket, call_id: str) -> Call | None:
    registry = getattr(ws.app.state, "webrtc_calls", None)
    call = registry.calls.get(call_id) if registry is not None else None
    return None if call is None or call.closed else call


async def serve_sideband(ws: WebSocket, principal: Principal, call_id: str) -> None:
    """An accepted WebSocket's whole life as a sideband of `call_id`, a call of this worker."""
    if principal.is_client_secret:
        await refuse(ws, "client_secret_not_allowed", "a client secret cannot attach to a call; connect the "
                     "sideband with the API key that minted it", POLICY_VIOLATION)
        return
    call = find_call(ws, call_id)
    if call is None or call.principal.tenant != principal.tenant:
        await refuse(ws, "call_not_found", f"no live call {call_id[:64]!r}", POLICY_VIOLATION)
        return
    if len(call.sidebands) >= MAX_PER_CALL:
        await refuse(ws, "too_many_sidebands", f"this call already has {MAX_PER_CALL} sidebands (the limit); "
                     "close one first", TRY_AGAIN_LATER)
        return
    sideband = call.attach_sideband()
    tasks = TaskSet()
    reader = tasks.create_task(_read(ws, call, sideband), name=f"{call.id}-sideband-reader")
    writer = tasks.create_task(_write(ws, call, sideband), name=f"{call.id}-sideband-writer")
    try:
        await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        call.detach_sideband(sideband)
        await tasks.aclose()
        await close(ws)


async def _read(ws: WebSocket, call: Call, sideband: Sideband) -> None:
    """Client events from the sideband, handled by the call's session in order, until the client leaves. The
    errors they cause go to this sideband alone (`set_event_source`): the browser never sees the server's mistakes."""
    set_event_source(sideband)
    await read_client_events(ws, call.session)


async def _write(ws: WebSocket, call: Call, sideband: Sideband) -> None:
    """The call's events to the socket; a normal close when the call ends, an error when the socket fell behind."""
    try:
        while (text := await sideband.get()) is not None:
            await ws.send_text(text)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the client left
    if sideband.overflowed:
        message = (f"this sideband fell {sideband.limit} events behind the call and was closed; the call goes on "
                   "(read events as they come, or attach again)")
        try:
            async with asyncio.timeout(FAREWELL_S):
                await refuse(ws, "sideband_overflow", message, POLICY_VIOLATION, type_="server_error")
        except TimeoutError:
            pass  # it is not reading at all: the socket closes without the farewell
    else:
        await close(ws, NORMAL, f"call ended ({call.close_reason})")
