"""voice/session_config.py: merging a session.update into the session, and what the defaults put on the wire."""

from voice.session_config import SessionConfig, merge


def test_session_merge_keeps_unrelated_fields_and_honours_null():
    base = SessionConfig().model_dump(mode="json")
    longer = {"audio": {"input": {"turn_detection": {"silence_duration_ms": 800}}}}
    merged = SessionConfig.model_validate(merge(base, longer))
    td = merged.audio.input.turn_detection
    assert td.silence_duration_ms == 800 and td.prefix_padding_ms == 300 and td.type == "server_vad"
    off = SessionConfig.model_validate(merge(base, {"audio": {"input": {"turn_detection": None}}}))
    assert off.audio.input.turn_detection is None and off.silence_ms() is None
    eager = {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}}}
    sem = SessionConfig.model_validate(merge(base, eager))
    assert sem.silence_ms() == 250
    assert "somagent" not in SessionConfig().wire()
