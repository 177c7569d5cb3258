"""The `/v1/realtime` WebSocket: JSON text frames in, JSON text frames out."""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voice.auth import AuthError, bearer
from voice.server import ServerBusy, VoiceServer

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


async def realtime_websocket(ws: WebSocket, server: VoiceServer) -> None:
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol="realtime" if "realtime" in offered else None)
    try:
        principal = server.auth.check(bearer(ws.headers, offered))
    except AuthError as exc:
        await _refuse(ws, exc.code, exc.message, POLICY_VIOLATION)
        return
    try:
        session = await server.open_session(principal, model=ws.query_params.get("model"))
    except ServerBusy as exc:
        await _refuse(ws, exc.code, exc.message, TRY_AGAIN_LATER, type_="server_error")
        return
    except AuthError as exc:
        await _refuse(ws, exc.code, exc.message, POLICY_VIOLATION)
        return
    writer = asyncio.create_task(_write(ws, session), name=f"ws-writer-{session.id}")
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") is not None:
                await session.handle_text(message["text"])
            elif message.get("bytes") is not None:
                session.error("binary_not_supported", "send events as JSON text frames, not binary frames")
    except WebSocketDisconnect:
        pass
    finally:
        await server.close_session(session)
        await asyncio.gather(writer, return_exceptions=True)
        if ws.application_state != WebSocketState.DISCONNECTED and ws.client_state != WebSocketState.DISCONNECTED:
            try:
                await ws.close()
            except (RuntimeError, WebSocketDisconnect):
                pass  # the client left first


async def _write(ws: WebSocket, session) -> None:
    try:
        while (event := await session.next_event()) is not None:
            await ws.send_text(json.dumps(event.to_wire(), separators=(",", ":")))
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the reader notices the disconnect and closes the session


async def _refuse(ws: WebSocket, code: str, message: str, close_code: int,
                  type_: str = "invalid_request_error") -> None:
    error = {"type": type_, "code": code, "message": message, "param": None, "event_id": None}
    event = {"type": "error", "event_id": "event_refused", "error": error}
    await ws.send_text(json.dumps(event))
    await ws.close(code=close_code, reason=f"{code}: {message}"[:120])
