"""A Realtime WebSocket's inbound side: its client events, handled by a session in order, until the client leaves.

Shared by the session socket (voice/transports/websocket.py) and a call's sideband
(voice/transports/webrtc/sideband.py), which hand their frames to a session the same way.
"""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect


async def read_client_events(ws: WebSocket, session: Any) -> None:
    """Text frames to `session.handle_text`; a binary frame is answered with an error; returns when the client
    leaves (RuntimeError: starlette's, when the socket was closed under the read)."""
    try:
        while (message := await ws.receive())["type"] != "websocket.disconnect":
            if message.get("text") is not None:
                await session.handle_text(message["text"])
            elif message.get("bytes") is not None:
                session.error("binary_not_supported", "send events as JSON text frames, not binary frames")
    except (WebSocketDisconnect, RuntimeError):
        return
