"""voice/events.py: typed server events serialise to the protocol's JSON objects at the edge."""

from __future__ import annotations

import base64
import json

from voice import events as ev


def test_audio_is_bytes_until_the_wire_and_base64_there():
    delta = ev.OutputAudioDelta(response_id="resp_1", item_id="item_1", audio=b"\x01\x00\xff\x7f", event_id="e1")
    wire = delta.to_wire()
    assert wire == {"type": "response.output_audio.delta", "event_id": "e1", "response_id": "resp_1",
                    "item_id": "item_1", "output_index": 0, "content_index": 0,
                    "delta": base64.b64encode(b"\x01\x00\xff\x7f").decode()}
    assert delta.audio == b"\x01\x00\xff\x7f"  # what the WebRTC track takes, never encoded


def test_flat_events_put_their_values_beside_their_fields():
    report = ev.TurnMetricsReport(item_id="item_1", response_id=None, asr_model="pocketsphinx",
                                  values={"voice_to_voice_ms": 350.0, "audio": {"rms_dbfs": -20.0}})
    wire = report.to_wire()
    assert wire["type"] == "somagent.turn.metrics" and wire["voice_to_voice_ms"] == 350.0
    assert wire["audio"] == {"rms_dbfs": -20.0} and "values" not in wire
    assert report.extension and not ev.ResponseDone(response={}).extension
    json.dumps(wire)  # JSON-ready as it is


def test_error_of_builds_the_protocol_error_object():
    err = ev.Error.of("invalid_value", "bad", param="audio", event_id="client_7")
    assert err.to_wire() == {"type": "error", "event_id": None, "error": {
        "type": "invalid_request_error", "code": "invalid_value", "message": "bad", "param": "audio",
        "event_id": "client_7"}}
    assert err.code == "invalid_value"
