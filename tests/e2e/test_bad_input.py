"""Bad input gets a clear `error` event; the session that sent it goes on, and so does everyone else."""

import asyncio
import base64
import json

import numpy as np
import pytest
import websockets

from tests.e2e.helpers import collect_until
from tests.helpers import speech
from voice.client import RealtimeClient

TRANSCRIBED = "conversation.item.input_audio_transcription.completed"


async def _still_works(client: RealtimeClient) -> None:
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "are you still there"}]}})
    await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    events = await collect_until(client, lambda e: e["type"] == "response.done")
    assert events[-1]["response"]["status"] == "completed"


async def _error_for(client: RealtimeClient, raw: str) -> dict:
    await client._ws.send(raw)
    events = await collect_until(client, lambda e: e["type"] == "error")
    return events[-1]["error"]


CASES = [
    ("{not json", "invalid_json", None),
    ("[1, 2, 3]", "invalid_event", "type"),
    (json.dumps({"type": "no.such.event"}), "unknown_event_type", "type"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "%%%not-base64%%%"}), "invalid_base64", "audio"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()}),
     "invalid_audio", "audio"),
    (json.dumps({"type": "input_audio_buffer.append"}), "invalid_value", "audio"),
    (json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "format": {"type": "audio/mp3"}}}}}), "invalid_value", "session.audio.input.format"),
    (json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 44100}}}}}), "invalid_value",
     "session.audio.input.format.audio/pcm.rate"),
    (json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "threshold": 7}}}}}), "invalid_value",
     "session.audio.input.turn_detection.server_vad.threshold"),
    (json.dumps({"type": "session.update", "session": {"type": "transcription"}}), "invalid_value", "session.type"),
    (json.dumps({"type": "conversation.item.create", "item": {"type": "message", "role": "robot", "content": []}}),
     "invalid_value", "item.role"),
    (json.dumps({"type": "conversation.item.truncate", "item_id": "item_missing", "content_index": 0,
                 "audio_end_ms": 5}), "item_not_found", "item_id"),
    (json.dumps({"type": "response.create", "response": {"output_modalities": ["video"]}}), "invalid_value",
     "response.output_modalities"),
]


@pytest.mark.parametrize("raw,code,param", CASES, ids=[c[1] + ":" + str(i) for i, c in enumerate(CASES)])
async def test_bad_event_gets_error_and_session_goes_on(server_url, raw, code, param):
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        error = await _error_for(client, raw)
        assert error["code"] == code
        assert error["message"]
        if param is not None:
            assert error["param"] == param
        await _still_works(client)


async def test_error_names_the_client_event(server_url):
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        error = await _error_for(client, json.dumps({"type": "nope", "event_id": "evt_123"}))
        assert error["event_id"] == "evt_123"


async def test_oversized_messages(server_url):
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        big = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (5 * 1024 * 1024)})
        error = await _error_for(client, big)
        assert error["code"] == "message_too_large"
        await _still_works(client)
    # past the transport's own limit the connection is closed with 1009, and the server goes on
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        with pytest.raises(websockets.ConnectionClosed) as info:
            # uncompressed, the server refuses the frame from its header: the send itself may see the close
            await client._ws.send("x" * (17 * 1024 * 1024))
            for _ in range(10):
                await client.recv(timeout=10)
        assert info.value.rcvd is None or info.value.rcvd.code == 1009
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        await _still_works(client)


async def test_binary_frames_are_refused_with_error(server_url):
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        await client._ws.send(b"\x00\x01")
        events = await collect_until(client, lambda e: e["type"] == "error")
        assert events[-1]["error"]["code"] == "binary_not_supported"
        await _still_works(client)


async def test_audio_before_session_update_uses_defaults(server_url):
    """Not an error in the protocol: audio before any session.update is read in the default format (24 kHz PCM)."""
    pcm, rate = speech("cards-003.wav")
    async with RealtimeClient(server_url) as client:
        created = await client.recv(timeout=10)
        assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        await client.stream_audio(np.concatenate([pcm, np.zeros(rate, np.int16)]), rate, speed=0)
        events = await collect_until(client, lambda e: e["type"] == TRANSCRIBED)
        assert events[-1]["transcript"]
        assert not any(e["type"] == "error" for e in events)


async def test_bad_session_does_not_disturb_another(server_url):
    pcm, rate = speech("goforward.wav")
    async with RealtimeClient(server_url) as good, RealtimeClient(server_url) as bad:
        await good.recv(timeout=10)
        await bad.recv(timeout=10)

        async def abuse():
            for raw in [c[0] for c in CASES] * 3:
                await bad._ws.send(raw)
            await bad._ws.send("x" * (17 * 1024 * 1024))

        abuser = asyncio.create_task(abuse())
        await good.stream_audio(np.concatenate([pcm, np.zeros(rate, np.int16)]), rate, speed=2.0)
        events = await collect_until(good, lambda e: e["type"] == "response.done", timeout=60)
        await asyncio.gather(abuser, return_exceptions=True)
        assert not any(e["type"] == "error" for e in events)
        transcript = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
        assert "forward" in transcript["transcript"]
        assert events[-1]["response"]["status"] == "completed"
