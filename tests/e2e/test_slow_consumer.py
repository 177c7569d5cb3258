"""A client whose outbox fills (it reads too slowly for what the server sends) is closed with 1008 and the reason,
and its session ends; the server goes on serving others."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.e2e.helpers import server_thread
from voice.config import Settings
from voice.limits import SessionLimits


async def test_an_overflowing_client_is_closed_with_a_reason_and_others_go_on():
    # a limit so small that one response's first burst of events overflows it, whatever the client's pace
    with server_thread(Settings(session_limits=SessionLimits(max_outbox_events=3))) as url:
        ws_url = url.replace("http://", "ws://") + "/v1/realtime"
        async with websockets.connect(ws_url) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}}))
            await ws.send(json.dumps({"type": "response.create"}))
            async with asyncio.timeout(30):
                try:
                    while True:
                        await ws.recv()
                except websockets.ConnectionClosed as closed:
                    code, reason = closed.rcvd.code, closed.rcvd.reason
        assert code == 1008 and reason.startswith("slow_consumer")
        async with websockets.connect(ws_url) as other:  # the server still takes sessions
            assert json.loads(await other.recv())["type"] == "session.created"
