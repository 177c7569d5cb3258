"""How a Realtime WebSocket is refused or ended: an `error` event with a code, then a close with its code.

Shared by the session socket (voice/transports/websocket.py), the sideband (voice/transports/webrtc/sideband.py)
and the workers' relay of a sideband (voice/internal_api.py).
"""

from __future__ import annotations

import json

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

NORMAL = 1000
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013


def error_text(code: str, message: str, type_: str = "invalid_request_error") -> str:
    error = {"type": type_, "code": code, "message": message, "param": None, "event_id": None}
    return json.dumps({"type": "error", "event_id": "event_refused", "error": error})


async def refuse(ws: WebSocket, code: str, message: str, close_code: int,
                 type_: str = "invalid_request_error") -> None:
    """The error event, then the close whose reason repeats its code; a client that already left is no error."""
    try:
        await ws.send_text(error_text(code, message, type_))
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    await close(ws, close_code, f"{code}: {message}")


async def close(ws: WebSocket, code: int = NORMAL, reason: str = "") -> None:
    """Close unless either side already has."""
    if ws.application_state == WebSocketState.DISCONNECTED or ws.client_state == WebSocketState.DISCONNECTED:
        return
    try:
        await ws.close(code=code, reason=reason[:120])
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client left first
