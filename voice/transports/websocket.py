"""The `/v1/realtime` WebSocket: JSON text frames in, JSON text frames out.

With `?call_id=rtc_...` the socket opens no session of its own: it attaches to that WebRTC call's session as
its sideband (voice/transports/webrtc/sideband.py), relayed to the worker that holds the call when another
worker of `serve --workers N` accepted it (voice/internal_api.py).
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from adapters.aio import TaskSet
from voice.auth import AuthError, bearer
from voice.internal_api import forward_sideband
from voice.server import ServerBusy, TenantLimit, VoiceServer
from voice.siblings import call_owner
from voice.tenants import REALTIME
from voice.transports.reader import read_client_events
from voice.transports.refusal import POLICY_VIOLATION, TRY_AGAIN_LATER, close, refuse
from voice.transports.webrtc.sideband import serve_sideband

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 15.0  # one event's send blocked this long: the client is not reading


async def realtime_websocket(ws: WebSocket, server: VoiceServer) -> None:
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol="realtime" if "realtime" in offered else None)
    token = bearer(ws.headers, offered)
    try:
        principal = server.auth.check(token)
        principal.require(REALTIME)
    except AuthError as exc:
        await refuse(ws, exc.code, exc.message, POLICY_VIOLATION)
        return
    call_id = ws.query_params.get("call_id")
    if call_id is not None:
        owner, me = call_owner(call_id), server.settings.worker
        if me is not None and owner is not None and owner != me.index:
            await forward_sideband(ws, owner, token, call_id)
        else:
            await serve_sideband(ws, principal, call_id)
        return
    try:
        session = await server.open_session(principal, model=ws.query_params.get("model"))
    except ServerBusy as exc:
        await refuse(ws, exc.code, exc.message, TRY_AGAIN_LATER, type_="server_error")
        return
    except TenantLimit as exc:
        await refuse(ws, exc.code, exc.message, POLICY_VIOLATION, type_="rate_limit_error")
        return
    except AuthError as exc:
        await refuse(ws, exc.code, exc.message, POLICY_VIOLATION)
        return
    # The session ends when either side does: the client leaving (the reader), or the writer giving up on a client
    # that stopped reading (its send blocked SEND_TIMEOUT_S, or the outbox full). The reader alone would wait on a
    # socket whose close frame cannot be sent while the client reads nothing, so the session would outlive it.
    tasks = TaskSet()
    reader = tasks.create_task(read_client_events(ws, session), name=f"ws-reader-{session.id}")
    writer = tasks.create_task(_write(ws, session), name=f"ws-writer-{session.id}")
    try:
        await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await server.close_session(session)
        await tasks.aclose()
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await close(ws)
        except TimeoutError:
            pass  # a client reading nothing never gets the close frame; its socket is uvicorn's to drop


async def _write(ws: WebSocket, session) -> None:
    """Send the session's events; a client that stops reading (a send blocked for SEND_TIMEOUT_S, or the session's
    outbox full) is closed with 1008 and the reason, and the session ends with it."""
    try:
        while (event := await session.next_event()) is not None:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await ws.send_text(json.dumps(event.to_wire(), separators=(",", ":")))
    except TimeoutError:
        reason = f"slow_consumer: a send waited {SEND_TIMEOUT_S:g} s for the client to read"
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the client left
    else:
        reason = session.overflow_reason
        if reason is None:
            return  # the session closed (the client left): the handler closes the socket
    log.warning("closing session %s: %s", session.id, reason)
    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await close(ws, POLICY_VIOLATION, reason)
    except TimeoutError:
        pass  # the close frame cannot go out either; the session ends all the same
