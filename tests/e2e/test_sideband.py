"""The sideband (`/v1/realtime?call_id=`) over a real server in this loop: attached to calls created from real
offers, which never connect here (no ICE on loopback), so where a test needs the DataChannel it gives the call
one that records what is sent (`Channel`). The same over a real aiortc call: tests/e2e/test_webrtc.py; across
the workers of `serve --workers 2`: tests/voice/test_workers.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets
from openai import AsyncOpenAI

from tests.e2e.webrtc.offers import make_offer
from voice import events as ev
from voice.app import create_app
from voice.client import ws_url
from voice.config import Settings
from voice.serving import running_server
from voice.transports.webrtc.call import Call
from voice.transports.webrtc.sideband import MAX_BEHIND, MAX_PER_CALL, Sideband

KEY_A, KEY_B = "sk-tenant-a", "sk-tenant-b"
WAIT_S = 30.0  # a bound on every wait below, never a measured time


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Channel:
    """A DataChannel stand-in, handed to the call as aiortc would hand it the browser's: what the call sends is
    queued for the test, `deliver` is a message from the browser."""

    label = "oai-events"
    readyState = "open"

    def __init__(self) -> None:
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._handlers: dict[str, Any] = {}

    def on(self, name: str, handler: Any) -> None:
        self._handlers[name] = handler

    def send(self, text: str) -> None:
        self.received.put_nowait(json.loads(text))

    def deliver(self, event: dict[str, Any]) -> None:
        self._handlers["message"](json.dumps(event))

    async def wait(self, pred) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_S):
            while not pred(event := await self.received.get()):
                pass
        return event


@asynccontextmanager
async def server() -> AsyncIterator[tuple[str, Any]]:
    app = create_app(Settings(deployment_mode="test", api_keys=frozenset({KEY_A, KEY_B}), warmup=False))
    async with running_server(app) as url:
        yield url, app


async def new_call(url: str, app: Any, key: str) -> Call:
    pc, offer = await make_offer()
    await pc.close()  # only its offer is needed: the call never connects here
    async with httpx.AsyncClient(timeout=WAIT_S) as http:
        r = await http.post(url + "/v1/realtime/calls", content=offer,
                            headers={"Content-Type": "application/sdp", **auth(key)})
    assert r.status_code == 201, r.text
    return app.state.webrtc_calls.calls[r.headers["location"].rsplit("/", 1)[1]]


def connect(url: str, call_id: str, key: str | None) -> Any:
    return websockets.connect(f"{ws_url(url)}?call_id={call_id}", additional_headers=auth(key) if key else {},
                              max_size=None, open_timeout=WAIT_S)


async def recv(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))


async def recv_until(ws: Any, pred) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT_S):
        while not got or not pred(got[-1]):
            got.append(json.loads(await ws.recv()))
    return got


async def closed(ws: Any) -> websockets.ConnectionClosed:
    """What the server closed with, after any events still on the way."""
    async with asyncio.timeout(WAIT_S):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as exc:
            return exc


def session_update(**session: Any) -> str:
    return json.dumps({"type": "session.update", "session": {"type": "realtime", **session}})


def is_type(kind: str, **fields: Any):
    return lambda e: e["type"] == kind and all(e.get(k) == v for k, v in fields.items())


def is_update(instructions: str):
    return lambda e: e["type"] == "session.updated" and e["session"]["instructions"] == instructions


async def test_the_sideband_follows_and_steers_the_call():
    async with server() as (url, app):
        call = await new_call(url, app, KEY_A)
        channel = Channel()
        call._on_datachannel(channel)  # as aiortc does once the browser's channel arrives
        assert (await channel.wait(lambda e: True))["type"] == "session.created"
        async with connect(url, call.id, KEY_A) as sb:
            channel.deliver({"type": "session.update", "session": {"type": "realtime", "instructions": "Browser."}})
            first = await recv(sb)  # nothing on attaching: the first event is what the browser caused
            assert first["type"] == "session.updated" and first["session"]["instructions"] == "Browser."
            assert first["session"]["id"] == call.session.id
            await channel.wait(is_update("Browser."))

            await sb.send(session_update(instructions="Server."))
            await recv_until(sb, is_update("Server."))
            await channel.wait(is_update("Server."))  # the browser sees what the server changed
            assert call.session.config.instructions == "Server."

            await sb.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there."}]}}))
            await sb.send(json.dumps({"type": "response.create"}))
            events = await recv_until(sb, is_type("response.done"))
            done = events[-1]["response"]
            assert done["status"] == "completed"
            kinds = {e["type"] for e in events}
            assert {"response.created", "response.output_audio_transcript.done"} <= kinds
            assert "response.output_audio.delta" not in kinds  # the voice went onto the call's track
            assert call.track.queued_samples > 0
            on_channel = await channel.wait(is_type("response.done"))
            assert on_channel["response"]["id"] == done["id"]
            assert on_channel["event_id"] == events[-1]["event_id"]  # one event, sent to both


async def test_an_error_goes_to_the_connection_whose_event_caused_it():
    """The server's bad event is answered on the sideband only, the browser's on its DataChannel only; what the
    session says to everyone (a session.updated) still reaches both."""
    async with server() as (url, app):
        call = await new_call(url, app, KEY_A)
        channel = Channel()
        call._on_datachannel(channel)
        await channel.wait(is_type("session.created"))
        async with connect(url, call.id, KEY_A) as sb:
            await sb.send(json.dumps({"type": "conversation.item.delete", "event_id": "evt_sb", "item_id": "nope"}))
            error = (await recv_until(sb, is_type("error")))[-1]["error"]
            assert error["code"] == "item_not_found" and error["event_id"] == "evt_sb"
            channel.deliver({"type": "conversation.item.retrieve", "event_id": "evt_dc", "item_id": "nope"})
            on_channel = await channel.wait(is_type("error"))
            assert on_channel["error"]["event_id"] == "evt_dc"  # the browser's own, not the sideband's before it
            await sb.send(session_update(instructions="After."))
            after = await recv_until(sb, is_update("After."))
            await channel.wait(is_update("After."))
        assert not [e for e in after if e["type"] == "error"]  # the browser's error never reached the sideband
        assert all(e["type"] != "error" for e in _drain(channel))  # nor a second error the browser


def _drain(channel: Channel) -> list[dict[str, Any]]:
    out = []
    while not channel.received.empty():
        out.append(channel.received.get_nowait())
    return out


async def test_other_keys_and_unknown_calls_are_refused_alike():
    async with server() as (url, app):
        call = await new_call(url, app, KEY_A)
        for call_id, key, code in [("rtc_nosuchcall", KEY_A, "call_not_found"),
                                   (call.id, KEY_B, "call_not_found"),
                                   (call.id, "sk-unknown", "invalid_api_key"),
                                   (call.id, None, "missing_api_key")]:
            async with connect(url, call_id, key) as sb:
                event = await recv(sb)
                refusal = await closed(sb)
            assert event["type"] == "error" and event["error"]["code"] == code, (call_id, key, event)
            assert refusal.rcvd.code == 1008 and refusal.rcvd.reason.startswith(code)
            if code == "call_not_found":  # another tenant's call reads exactly as no call at all
                assert event["error"]["message"] == f"no live call {call_id!r}"
        assert not call.closed and not call.sidebands


async def test_a_call_takes_a_few_sidebands_at_once():
    async with server() as (url, app):
        call = await new_call(url, app, KEY_A)
        attached = [await connect(url, call.id, KEY_A) for _ in range(MAX_PER_CALL)]
        try:
            for i, sb in enumerate(attached):  # each is attached once its first event arrives
                await sb.send(session_update(instructions=f"Number {i}."))
                await recv_until(sb, is_update(f"Number {i}."))
            async with connect(url, call.id, KEY_A) as extra:
                assert (await recv(extra))["error"]["code"] == "too_many_sidebands"
                assert (await closed(extra)).rcvd.code == 1013
        finally:
            for sb in attached:
                await sb.close()


async def test_a_call_made_with_a_client_secret_is_its_minting_keys():
    async with server() as (url, app):
        async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as http:
            r = await http.post("/v1/realtime/client_secrets", headers=auth(KEY_A), json={})
        secret = r.json()["value"]
        call = await new_call(url, app, secret)
        async with connect(url, call.id, secret) as sb:  # the browser's credential is not the server's
            event = await recv(sb)
            assert event["error"]["code"] == "client_secret_not_allowed"
            assert (await closed(sb)).rcvd.code == 1008
        async with connect(url, call.id, KEY_B) as sb:
            assert (await recv(sb))["error"]["code"] == "call_not_found"
        async with connect(url, call.id, KEY_A) as sb:
            await sb.send(session_update(instructions="Minted by A."))
            await recv_until(sb, is_update("Minted by A."))


async def test_closing_the_sideband_leaves_the_call_and_hanging_up_closes_the_sideband():
    async with server() as (url, app):
        call = await new_call(url, app, KEY_A)
        async with connect(url, call.id, KEY_A) as sb:
            await sb.send(session_update(instructions="First."))
            await recv_until(sb, is_update("First."))
        async with connect(url, call.id, KEY_A) as sb, httpx.AsyncClient(base_url=url, timeout=WAIT_S) as http:
            await sb.send(session_update(instructions="Second."))
            await recv_until(sb, is_update("Second."))  # the same session, still live
            info = (await http.get(f"/v1/realtime/calls/{call.id}", headers=auth(KEY_A))).json()
            assert info["close_reason"] is None and info["session_id"] == call.session.id
            assert (await http.delete(f"/v1/realtime/calls/{call.id}", headers=auth(KEY_A))).status_code == 200
            ended = await closed(sb)
        assert isinstance(ended, websockets.ConnectionClosedOK) and ended.rcvd.code == 1000
        assert "hangup" in ended.rcvd.reason
        assert call.closed and call.session.closed and not app.state.server.sessions


async def test_a_sideband_that_falls_behind_is_cut_off_and_the_call_goes_on():
    async with server() as (url, app):
        call = await new_call(url, app, KEY_A)
        channel = Channel()
        call._on_datachannel(channel)
        async with connect(url, call.id, KEY_A) as slow:
            await slow.send(session_update(instructions="Attached."))
            await recv_until(slow, is_update("Attached."))
            (sideband,) = call.sidebands
            for _ in range(MAX_BEHIND + 1):  # in one go: its writer gets no turn to send any of them
                call.send_event(ev.InputAudioBufferCleared())
            assert sideband.overflowed
            event = await recv(slow)  # what it missed is dropped: the error comes next
            assert event["type"] == "error" and event["error"]["code"] == "sideband_overflow"
            assert (await closed(slow)).rcvd.code == 1008
        assert not call.closed
        channel.deliver({"type": "session.update", "session": {"type": "realtime", "instructions": "Still here."}})
        await channel.wait(is_update("Still here."))
        async with connect(url, call.id, KEY_A) as fresh:  # and the server may attach again
            await fresh.send(session_update(instructions="Back."))
            await recv_until(fresh, is_update("Back."))


async def test_the_official_sdk_attaches_by_call_id():
    async with server() as (url, app):
        call = await new_call(url, app, KEY_A)
        client = AsyncOpenAI(base_url=url + "/v1", api_key=KEY_A)
        try:
            async with client.realtime.connect(call_id=call.id) as conn:
                await conn.session.update(session={"type": "realtime", "instructions": "From the SDK."})
                async with asyncio.timeout(WAIT_S):
                    async for event in conn:
                        if event.type == "session.updated":
                            break
                assert event.session.instructions == "From the SDK."
                assert call.session.config.instructions == "From the SDK."
        finally:
            await client.close()


async def test_a_sideband_queue_keeps_order_drains_on_end_and_drops_all_on_overflow():
    sideband = Sideband(limit=3)
    for text in ("a", "b"):
        sideband.put(text)
    sideband.end()
    sideband.put("after the end")
    assert [await sideband.get(), await sideband.get(), await sideband.get()] == ["a", "b", None]
    assert not sideband.overflowed
    full = Sideband(limit=3)
    for i in range(4):
        full.put(str(i))
    assert full.overflowed and await full.get() is None
