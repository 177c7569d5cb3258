"""A client whose outbox fills (it reads too slowly for what the server sends) is closed with 1008 and the reason,
and its session ends; the server goes on serving others."""

from __future__ import annotations

import asyncio
import json

import websockets

import voice.transports.websocket as transport
from adapters.llm.openai_compat import OpenAICompatConfig
from router.defaults import build_default_router
from tests.e2e.helpers import server_thread
from tests.router.fake_chat_server import FakeChatServer, Script
from voice.app import create_app
from voice.config import Settings
from voice.limits import SessionLimits
from voice.serving import running_server


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


async def test_a_client_that_reads_nothing_at_all_ends_its_session_at_the_send_timeout(monkeypatch, caplog):
    """No outbox limit is reached (it is large here): the client's TCP window is full, the server's send blocks,
    and after SEND_TIMEOUT_S the session ends, though not even the close frame can reach that client."""
    monkeypatch.setattr(transport, "SEND_TIMEOUT_S", 0.5)
    monkeypatch.setattr("voice.serving.WS_PING_S", 600.0)  # the pings would end it too, later: not here
    fake = FakeChatServer().start()
    try:
        fake.script("wordy", Script(tokens=tuple(f" sentence number {i}." for i in range(3000))))
        router = build_default_router(OpenAICompatConfig(base_url=fake.base_url, model="wordy", timeout_s=30),
                                      database_url=None, mode="test")
        app = create_app(Settings(warmup=False, session_limits=SessionLimits(max_outbox_events=1_000_000)), router)
        async with running_server(app) as url:
            ws_url = url.replace("http://", "ws://") + "/v1/realtime"
            # max_queue=1: the client library stops reading from the socket at once, as a stuck app would
            async with websockets.connect(ws_url, max_queue=1, max_size=None, ping_interval=None) as ws:
                assert json.loads(await ws.recv())["type"] == "session.created"
                await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                    "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Talk."}]}}))
                await ws.send(json.dumps({"type": "response.create"}))  # spoken: megabytes of audio deltas
                server = app.state.server
                async with asyncio.timeout(60):
                    while not server.sessions:
                        await asyncio.sleep(0.01)
                    while server.sessions:  # ended by the writer, with the client still connected
                        await asyncio.sleep(0.05)
                ws.transport.abort()
        # ended by the send timeout, not by the outbox limit (nor the pings, put off here)
        assert "slow_consumer: a send waited 0.5 s" in caplog.text
    finally:
        fake.stop()
