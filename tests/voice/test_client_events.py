"""voice/client_events.py: client events are validated once at the edge into typed values; a bad one gets the
protocol's error code and the path of the offending field."""

from __future__ import annotations

import pytest

from voice import client_events as ce


def _error(event) -> ce.ClientError:
    with pytest.raises(ce.ClientError) as info:
        ce.parse(event)
    return info.value


def test_a_valid_event_becomes_its_typed_value():
    event = ce.parse({"type": "conversation.item.create", "event_id": "c1", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"},
                                                       {"type": "input_audio", "transcript": "there"}]}})
    assert isinstance(event, ce.ConversationItemCreate) and event.event_id == "c1"
    assert [p.value for p in event.item.content] == ["hi", "there"] and event.item.id is None


def test_unknown_fields_are_ignored_and_defaults_filled():
    event = ce.parse({"type": "response.create", "response": {"conversation": "none", "future_field": 1}})
    assert isinstance(event, ce.ResponseCreate) and event.response.conversation == "none"
    assert event.response.output_modalities is None


@pytest.mark.parametrize("event,code,param", [
    ([1, 2], "invalid_event", "type"),
    ({"type": "no.such.event"}, "unknown_event_type", "type"),
    ({"type": "input_audio_buffer.append"}, "invalid_value", "audio"),
    ({"type": "input_audio_buffer.append", "audio": 5}, "invalid_value", "audio"),
    ({"type": "conversation.item.create", "item": {"role": "user", "content": [{"type": "image"}]}},
     "invalid_value", "item.content[0].type"),
    ({"type": "conversation.item.create", "item": {"role": "user", "content": [{"type": "input_text"}]}},
     "invalid_value", "item.content[0]"),
    ({"type": "conversation.item.create", "item": {"type": "mcp_call", "role": "user", "content": [
        {"type": "input_text", "text": "x"}]}}, "invalid_value", "item"),
    ({"type": "conversation.item.create", "item": {"type": "function_call", "name": "f"}}, "invalid_value",
     "item.call_id"),
    ({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "c"}},
     "invalid_value", "item.output"),
    ({"type": "response.create", "response": {"input": [{"type": "item_reference"}]}}, "invalid_value",
     "response.input[0].id"),
    ({"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": True}, "invalid_value", "audio_end_ms"),
    ({"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": -1}, "invalid_value", "audio_end_ms"),
    ({"type": "response.create", "response": {"max_output_tokens": 0}}, "invalid_value", "response.max_output_tokens"),
    ({"type": "response.create", "response": {"output_modalities": ["audio", "text"]}}, "invalid_value",
     "response.output_modalities"),
])
def test_a_bad_event_names_the_field(event, code, param):
    err = _error(event)
    assert (err.code, err.param) == (code, param) and err.message


def test_the_append_hot_path_still_refuses_what_is_not_a_string():
    fast = ce.parse({"type": "input_audio_buffer.append", "audio": "AAAA", "event_id": "e1"})
    assert isinstance(fast, ce.AudioAppend) and (fast.audio, fast.event_id) == ("AAAA", "e1")
    assert _error({"type": "input_audio_buffer.append"}).param == "audio"  # missing: the model says what is wrong
    assert _error({"type": "input_audio_buffer.append", "audio": "AAAA", "event_id": 7}).param == "event_id"
    assert ce.event_id_of({"event_id": "e9"}) == "e9" and ce.event_id_of([]) is None
