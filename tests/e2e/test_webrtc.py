"""WebRTC over a real server: media pushed into a session, the echo gate in a live reply, offers refused or
accepted on loopback, and real aiortc calls.

The calls themselves need ICE, which aiortc never runs over 127.0.0.1: they run in a network namespace the
test creates (tests/e2e/webrtc/netns.py) and are skipped, with the reason printed, where that is not permitted.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import jiwer
import numpy as np
import pytest

from dsp import resample
from tests.e2e.helpers import collect_until, server_thread
from tests.e2e.webrtc.harness import PYTHON, run_result, say
from tests.e2e.webrtc.netns import NetnsUnavailable, netns_exec, network_namespace
from tests.e2e.webrtc.offers import make_offer
from tests.helpers import speech, transcripts
from voice.app import create_app
from voice.auth import Principal
from voice.client import RealtimeClient, decode_audio_delta
from voice.config import Settings
from voice.echo import rms_dbfs
from voice.events import InputTranscriptionCompleted
from voice.serving import running_server

LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog."] * 12)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


# -- the session side -------------------------------------------------------------------------------

async def test_push_pcm_feeds_the_turn_loop():
    """48 kHz PCM pushed the way the WebRTC transport does it makes an ordinary user turn."""
    pcm, rate = speech("goforward.wav")
    pcm48 = resample(np.concatenate([pcm, np.zeros(rate, np.int16)]), rate, 48000)
    app = create_app(Settings())
    async with running_server(app):
        session = await app.state.server.open_session(Principal("anonymous"))
        try:
            for i in range(0, len(pcm48), 960):
                assert await session.push_pcm(pcm48[i:i + 960], 48000)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while True:
                event = await asyncio.wait_for(session.next_event(), max(0.1, deadline - loop.time()))
                if isinstance(event, InputTranscriptionCompleted):
                    break
            assert "forward" in event.transcript
        finally:
            await app.state.server.close_session(session)


async def test_echo_gate_keeps_the_agent_talking_over_its_own_echo():
    """Faint echo of the agent's voice during its reply is not a barge-in; it is counted as a suppressed one."""
    app = create_app(Settings())
    async with running_server(app) as url, RealtimeClient(url) as client:
        await client.recv(timeout=10)
        await client.update_session(somagent={"events": True})
        await client.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": LONG_TEXT}]}})
        await client.send({"type": "response.create"})
        events = await collect_until(client, lambda e: e["type"] == "response.done", 60)
        reply = events[-1]["response"]
        audio = np.concatenate([decode_audio_delta(e) for e in events if e["type"] == "response.output_audio.delta"])
        assert len(audio) > 24000 * 20  # a long reply, still playing while the echo comes back
        session = next(iter(app.state.server.sessions.values()))
        echo = audio[:24000 * 4].astype(np.float64) * 10 ** ((-55 - rms_dbfs(audio)) / 20)  # residual echo
        await client.stream_audio(np.concatenate([echo.astype(np.int16), np.zeros(12000, np.int16)]), 24000)
        suppressed = await collect_until(client, lambda e: e["type"] == "somagent.echo.suppressed", 30)
        assert suppressed[-1]["allowed"] is False
        # the echo is not a user turn: nothing committed, transcribed or answered
        assert not [e for e in suppressed if e["type"] in ("input_audio_buffer.committed", "response.created")]
        turns = session.turns
        assert turns.user_turns == 0
        assert turns.false_barge_ins >= 1, turns.echo.last_decision
        assert turns.barge_ins == 0
        assert turns.echo.frames_observed > 0
        await client.send({"type": "conversation.item.retrieve", "item_id": reply["output"][0]["id"]})
        got = await collect_until(client, lambda e: e["type"] == "conversation.item.retrieved", 10)
        assert not [e for e in got if e["type"] == "conversation.item.truncated"]
        assert got[-1]["item"]["content"][0]["transcript"] == reply["output"][0]["content"][0]["transcript"]


# -- offers refused or accepted, on loopback (no ICE needed) ------------------------------------------


def error_code(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/json"), r.text
    return r.json()["error"]["code"]


async def test_bad_offers_get_a_reason():
    with server_thread(Settings(max_calls_per_key=1)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            sdp_headers = {"Content-Type": "application/sdp"}
            r = await http.post("/v1/realtime/calls", content="hello", headers=sdp_headers)
            assert r.status_code == 400 and error_code(r) == "invalid_sdp"
            r = await http.post("/v1/realtime/calls", content="v=0\r\nthis is not sdp\r\n", headers=sdp_headers)
            assert r.status_code == 400 and error_code(r) == "invalid_sdp"
            r = await http.post("/v1/realtime/calls", content="", headers=sdp_headers)
            assert r.status_code == 400 and error_code(r) == "invalid_sdp"
            r = await http.post("/v1/realtime/calls", json={"sdp": "v=0"})
            assert r.status_code == 415 and error_code(r) == "unsupported_media_type"

            pc, no_audio = await make_offer(audio=False)
            await pc.close()
            assert "m=application" in no_audio and "m=audio" not in no_audio
            r = await http.post("/v1/realtime/calls", content=no_audio, headers=sdp_headers)
            assert r.status_code == 400 and error_code(r) == "no_audio"
            assert (await http.get("/healthz")).json()["sessions"] == 0  # refused offers leave nothing behind

            pc, offer = await make_offer()
            r = await http.post("/v1/realtime/calls", content=offer, headers=sdp_headers)
            assert r.status_code == 201, r.text
            assert r.headers["content-type"].startswith("application/sdp")
            assert r.text.startswith("v=0") and "m=audio" in r.text and "a=sendrecv" in r.text
            call_url = r.headers["location"]
            assert re.fullmatch(r"/v1/realtime/calls/rtc_[A-Za-z0-9]+", call_url)

            pc2, offer2 = await make_offer()
            r = await http.post("/v1/realtime/calls", content=offer2, headers=sdp_headers)
            assert r.status_code == 429 and error_code(r) == "too_many_calls"

            info = (await http.get(call_url)).json()
            assert info["object"] == "realtime.call" and info["session_id"].startswith("sess_")
            assert info["metrics"]["barge_ins"] == 0 and info["metrics"]["false_barge_ins"] == 0
            assert (await http.get("/healthz")).json()["sessions"] == 1

            assert (await http.post(call_url + "/hangup")).status_code == 200
            assert (await http.get(call_url)).status_code == 404
            assert (await http.delete(call_url)).status_code == 404
            assert (await http.get("/healthz")).json()["sessions"] == 0
            await pc.close()
            await pc2.close()


async def test_calls_need_a_key_outside_developer_light():
    settings = Settings(deployment_mode="test", api_keys=frozenset({"sk-test-webrtc"}))
    with server_thread(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            pc, offer = await make_offer()
            sdp = {"Content-Type": "application/sdp"}
            r = await http.post("/v1/realtime/calls", content=offer, headers=sdp)
            assert r.status_code == 401 and error_code(r) == "missing_api_key"
            r = await http.post("/v1/realtime/calls", content=offer, headers={**sdp, "Authorization": "Bearer nope"})
            assert r.status_code == 401 and error_code(r) == "invalid_api_key"
            auth = {"Authorization": "Bearer sk-test-webrtc"}
            r = await http.post("/v1/realtime/calls", content=offer, headers={**sdp, **auth})
            assert r.status_code == 201, r.text
            call_url = r.headers["location"]
            assert (await http.post(call_url + "/hangup")).status_code == 401
            assert (await http.delete(call_url, headers=auth)).status_code == 200
            assert (await http.get("/healthz")).json()["sessions"] == 0
            await pc.close()


async def test_official_sdk_multipart_offer():
    """`client.realtime.calls.create(sdp=..., session=...)` sends multipart/form-data and wants SDP back."""
    from openai import AsyncOpenAI

    with server_thread() as url:
        pc, offer = await make_offer()
        client = AsyncOpenAI(base_url=url + "/v1", api_key="sk-anything")
        try:
            raw = await client.realtime.calls.with_raw_response.create(
                sdp=offer,
                session={"type": "realtime", "instructions": "Be brief.", "audio": {"output": {"voice": "marin"}}})
            assert raw.http_response.status_code == 201
            assert raw.http_response.request.headers["content-type"].startswith("multipart/form-data")
            assert raw.http_response.headers["content-type"].startswith("application/sdp")
            assert "m=audio" in raw.http_response.text
            call_id = raw.http_response.headers["location"].rsplit("/", 1)[-1]
            await client.realtime.calls.hangup(call_id)
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(url + "/healthz")).json()["sessions"] == 0
                r = await http.post(url + "/v1/realtime/calls", files={"sdp": (None, offer), "session": (None, "[1]")})
                assert r.status_code == 400 and error_code(r) == "invalid_session"
        finally:
            await client.close()
            await pc.close()


async def test_server_shutdown_closes_peer_connections():
    app = create_app(Settings())
    async with running_server(app) as url:
        pc, offer = await make_offer()
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(url + "/v1/realtime/calls", content=offer, headers={"Content-Type": "application/sdp"})
        assert r.status_code == 201
        (call,) = app.state.webrtc_calls.calls.values()
        assert call.pc.connectionState != "closed"
    assert call.pc.connectionState == "closed" and call.closed and call.close_reason == "server_shutdown"
    assert call.session.closed and not app.state.webrtc_calls.calls and not app.state.server.sessions
    await pc.close()


# -- real calls, in a network namespace ----------------------------------------------------------------

@pytest.fixture(scope="module")
def aiortc_calls():
    """One server and an aiortc caller inside a fresh namespace: conversation, barge-in, clear, vanished peer."""
    try:
        with network_namespace() as (ns, address):
            return run_result(netns_exec(ns) + [PYTHON, "-m", "tests.e2e.webrtc.run_client", "--host", address,
                                                "--scenarios", "conversation,bargein,clear,tabclose"], timeout=280)
    except NetnsUnavailable as exc:
        reason = f"WebRTC end-to-end skipped: aiortc needs a routable address and {exc}"
        say(reason)
        pytest.skip(reason)


def scenario(results: dict, name: str) -> dict:
    out = results[name]
    assert "error" not in out, f"{out.get('error')}\n{out.get('traceback', '')}"
    return out


def test_webrtc_call_hears_and_answers(aiortc_calls):
    out = scenario(aiortc_calls, "conversation")
    assert out["status"] == 201 and out["call_id"].startswith("rtc_")
    assert out["output_format"] == {"type": "audio/pcm", "rate": 48000}
    assert out["output_format_after_update"] == {"type": "audio/pcm", "rate": 48000}  # the track carries the voice
    reference = transcripts()["goforward.wav"]
    assert jiwer.wer(reference, normalise(out["user_transcript"])) <= 0.5, out["user_transcript"]
    assert "heard" in out["agent_transcript"].lower()
    assert out["response_status"] == "completed"
    assert out["loud_frames"] >= 50, out  # at least a second of the agent's voice came back on the track
    assert "response.output_audio.delta" not in out["event_types"]  # audio is on the track, not the channel
    for kind in ("output_audio_buffer.started", "output_audio_buffer.stopped", "somagent.turn.metrics",
                 "somagent.session.metrics", "response.output_audio_transcript.done"):
        assert kind in out["event_types"]
    assert out["partials"] > 0
    assert out["call_info"]["metrics"]["frames_in"] > 100 and out["call_info"]["metrics"]["user_turns"] == 1
    assert out["hangup_status"] == 200
    assert out["sessions_after_hangup"] == 0 and out["calls_after_hangup"] == 0
    assert out["call_info_after_hangup"] is None
    assert aiortc_calls["sessions_at_end"] == 0


def test_webrtc_barge_in_flushes_the_queued_voice(aiortc_calls):
    out = scenario(aiortc_calls, "bargein")
    assert out["status"] == 201  # multipart offer from the official SDK, with a session part
    session = out["session_from_multipart"]
    assert session["somagent"]["events"] is True and session["instructions"] == "Answer briefly."
    assert session["output_format"] == {"type": "audio/pcm", "rate": 48000}
    assert out["cleared_response_id_matches"]
    assert out["reply_words"] > 100  # tens of seconds of speech were queued when the user spoke
    assert out["loud_frames_before_clear"] < 400  # ... of which only a few seconds had played
    assert out["loud_frames_after_clear"] <= 5  # and nothing queued played after the barge-in
    assert out["status_details"] is None or out["status_details"]["reason"] == "turn_detected"
    cut = [t for t in out["truncated"] if t["item_id"] == out["reply_item_id"]]
    assert cut and 0 < cut[0]["audio_end_ms"] < 10000
    assert out["call_info"]["metrics"]["barge_ins"] == 1
    assert "forward" in out["user_transcript"]
    assert out["sessions_after_hangup"] == 0


def test_webrtc_output_audio_buffer_clear(aiortc_calls):
    out = scenario(aiortc_calls, "clear")
    assert out["cleared_events"] == 1
    assert out["truncated"] == 1
    assert out["loud_frames_before_clear"] >= 40
    assert out["loud_frames_after_clear"] <= 5
    assert out["sessions_after_hangup"] == 0


def test_webrtc_vanished_peer_frees_the_call(aiortc_calls):
    out = scenario(aiortc_calls, "tabclose")
    assert out["sessions_while_connected"] == 1
    assert out["sessions_after_close"] == 0 and out["calls_after_close"] == 0


@pytest.fixture(scope="module")
def aiortc_sideband():
    """A live aiortc call with an app server's sideband WebSocket on it (tests/e2e/test_sideband.py: the rest)."""
    try:
        with network_namespace() as (ns, address):
            return run_result(netns_exec(ns) + [PYTHON, "-m", "tests.e2e.webrtc.run_client", "--host", address,
                                                "--scenarios", "sideband"], timeout=200)
    except NetnsUnavailable as exc:
        reason = f"WebRTC sideband end-to-end skipped: aiortc needs a routable address and {exc}"
        say(reason)
        pytest.skip(reason)


def test_webrtc_sideband_shares_the_call(aiortc_sideband):
    out = scenario(aiortc_sideband, "sideband")
    # the browser's session.update reaches the sideband, which was sent nothing on attaching
    assert out["sideband_first"] == {"type": "session.updated", "instructions": "From the browser."}
    assert out["browser_saw_server_update"] == "From the server."
    assert out["response_status"] == out["browser_saw_response"] == "completed"
    assert out["loud_frames"] >= 25  # the reply the server asked for was heard on the call's track
    assert "response.output_audio.delta" not in out["sideband_types"]  # as on the DataChannel: audio is on the track
    assert {"output_audio_buffer.started", "output_audio_buffer.stopped",
            "response.output_audio_transcript.done"} <= set(out["sideband_types"])
    assert out["call_after_sideband_close"] == "connected"
    assert out["hangup_status"] == 200
    assert out["sideband_close"]["code"] == 1000 and "hangup" in out["sideband_close"]["reason"]
    assert out["sessions_after_hangup"] == 0

