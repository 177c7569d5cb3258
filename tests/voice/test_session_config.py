"""voice/session_config.py: merging a session.update into the session, and what the defaults put on the wire."""

import numpy as np
import pytest
from openai.types.realtime import RealtimeServerEvent, RealtimeSessionCreateRequest
from pydantic import TypeAdapter, ValidationError

from tests.voice.kit import speech_clip, voice_session
from voice.conversation import ContextWindow
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


# -- every GA field -------------------------------------------------------------------------------------------

GA_SESSION = {
    "type": "realtime",
    "model": "gpt-realtime-2",
    "instructions": "Be brief.",
    "output_modalities": ["audio"],
    "max_output_tokens": 512,
    "parallel_tool_calls": False,
    "reasoning": {"effort": "low"},
    "tracing": {"workflow_name": "support", "group_id": "g1", "metadata": {"ticket": 7}},
    "truncation": {"type": "retention_ratio", "retention_ratio": 0.5, "token_limits": {"post_instructions": 1000}},
    "prompt": {"id": "pmpt_123", "version": "2", "variables": {"city": "Paris"}},
    "include": ["item.input_audio_transcription.logprobs"],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "tools": [
        {"type": "function", "name": "get_weather", "description": "Weather in a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "no_type_given", "parameters": {"type": "object", "properties": {}}},
        {"type": "mcp", "server_label": "docs", "server_url": "https://example.invalid/mcp",
         "require_approval": "never", "allowed_tools": ["search"]},
    ],
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "noise_reduction": {"type": "far_field"},
            "transcription": {"model": "gpt-realtime-whisper", "languages": ["fr", "en"], "delay": "low",
                              "keywords": ["SomaGent", "Piper"], "prompt": "A support call."},
            "turn_detection": {"type": "semantic_vad", "eagerness": "low", "create_response": True},
        },
        "output": {"format": {"type": "audio/pcmu"}, "voice": {"id": "voice_joe"}, "speed": 1.1},
    },
}


def test_every_ga_field_is_accepted_and_echoed_in_the_sdks_own_type():
    cfg = SessionConfig.model_validate(merge(SessionConfig().model_dump(mode="json"), GA_SESSION))
    wire = cfg.wire()
    echoed = RealtimeSessionCreateRequest.model_validate(wire)  # the SDK's type for session.updated
    assert echoed.audio.output.voice.id == "voice_joe"
    assert echoed.audio.input.transcription.languages == ["fr", "en"]
    assert echoed.reasoning.effort == "low" and echoed.parallel_tool_calls is False
    assert echoed.truncation.retention_ratio == 0.5
    assert [t.type for t in echoed.tools] == ["function", "function", "mcp"]
    assert echoed.tracing.workflow_name == "support" and echoed.prompt.id == "pmpt_123"
    # what the fields mean here
    assert cfg.audio.output.voice_name() == "voice_joe"
    t = cfg.audio.input.transcription
    assert t.recognition_language() == "fr"
    assert t.recognition_prompt() == "A support call. SomaGent, Piper"
    assert cfg.wants_logprobs()
    assert ContextWindow.of(cfg.truncation) == ContextWindow(max_items=None, max_chars=4000, retain=0.5)


def test_nulls_the_ga_types_allow_mean_not_set_where_a_field_has_no_null_state():
    base = merge(SessionConfig().model_dump(mode="json"), {"instructions": "Keep it short.", "tools": [
        {"type": "function", "name": "f"}]})
    patch = {"type": None, "instructions": None, "tools": None, "tool_choice": None, "max_output_tokens": None,
             "output_modalities": None, "truncation": None, "parallel_tool_calls": None,
             "audio": {"input": {"format": None, "turn_detection": {"type": "server_vad", "threshold": None,
                                                                    "idle_timeout_ms": None}},
                       "output": {"voice": None, "speed": None}}}
    cfg = SessionConfig.model_validate(merge(base, patch))
    assert cfg.instructions == "Keep it short." and [t.name for t in cfg.tools] == ["f"]
    assert cfg.audio.input.turn_detection.threshold == 0.5 and cfg.audio.output.voice == "marin"
    assert cfg.max_output_tokens == "inf" and cfg.truncation == "auto"
    # where null means something, it still does
    off = SessionConfig.model_validate(merge(merge(base, GA_SESSION), {"tracing": None, "audio": {"input": {
        "noise_reduction": None, "transcription": None, "turn_detection": None}}}))
    assert off.tracing is None and off.audio.input.noise_reduction is None
    assert off.audio.input.transcription is None and off.audio.input.turn_detection is None


@pytest.mark.parametrize("patch", [
    {"reasoning": {"efort": "low"}},  # a typo stays an error
    {"reasoning": {"effort": "extreme"}},
    {"audio": {"output": {"voice": {"name": "joe"}}}},
    {"audio": {"input": {"transcription": {"delay": "instant"}}}},
    {"audio": {"input": {"noise_reduction": {"strength": 2.0}}}},
    {"truncation": {"type": "retention_ratio", "retention_ratio": 1.5}},
    {"tool_choice": "sometimes"},
    {"tools": [{"type": "web_search"}]},
    {"include": ["everything"]},
    {"max_output_tokens": 5000},
])
def test_values_outside_the_ga_types_are_refused(patch):
    with pytest.raises(ValidationError):
        SessionConfig.model_validate(merge(SessionConfig().model_dump(mode="json"), patch))


def test_a_tool_choice_or_truncation_of_another_type_replaces_the_old_one_whole():
    base = merge(SessionConfig().model_dump(mode="json"), GA_SESSION)
    cfg = SessionConfig.model_validate(merge(base, {"tool_choice": {"type": "mcp", "server_label": "docs"},
                                                    "truncation": "disabled",
                                                    "audio": {"output": {"voice": "joe"}}}))
    assert cfg.tool_choice.type == "mcp" and cfg.tool_choice.server_label == "docs"
    assert cfg.tool_choice.name is None  # not carried over from the function choice before it
    assert cfg.truncation == "disabled" and cfg.audio.output.voice == "joe"


# -- honoured in a session ------------------------------------------------------------------------------------

def _noise(seconds: float, rms: float = 2500.0) -> np.ndarray:
    return np.random.default_rng(11).normal(0, rms, int(16000 * seconds)).clip(-32768, 32767).astype(np.int16)


@pytest.mark.parametrize("reduce", [False, True])
async def test_noise_reduction_keeps_a_fan_from_being_taken_for_speech(reduce):
    """Two seconds of loud broadband noise: server VAD takes it for speech unless `noise_reduction` is on."""
    session = {"audio": {"input": {"noise_reduction": {"type": "near_field"} if reduce else None}}}
    async with voice_session(session=session) as kit:
        await kit.next()
        await kit.speak(_noise(2.0))
        await kit.send({"type": "input_audio_buffer.clear"})
        events = await kit.until("input_audio_buffer.cleared")
    started = [e for e in events if e["type"] == "input_audio_buffer.speech_started"]
    assert bool(started) is not reduce


async def test_noise_reduction_still_lets_speech_through_and_can_be_turned_off():
    session = {"audio": {"input": {"noise_reduction": {"type": "far_field"}}}}
    async with voice_session(session=session, transcripts=["go forward"], replies=["Going."]) as kit:
        await kit.next()
        noisy = speech_clip().astype(np.float64) + _noise(len(speech_clip()) / 16000, 300.0)
        await kit.speak(noisy.clip(-32768, 32767).astype(np.int16))
        events = await kit.until("input_audio_buffer.speech_stopped")
        assert any(e["type"] == "input_audio_buffer.speech_started" for e in events)
        assert kit.session._denoiser is not None
        await kit.send({"type": "session.update", "session": {"audio": {"input": {"noise_reduction": None}}}})
        await kit.until("session.updated")
        assert kit.session._denoiser is None


async def test_transcription_languages_keywords_delay_and_logprobs_reach_the_recogniser_and_the_client():
    session = {"include": ["item.input_audio_transcription.logprobs"], "audio": {"input": {"transcription": {
        "languages": ["de"], "keywords": ["Kubernetes", "Qdrant"], "delay": "xhigh"}}}}
    async with voice_session(session=session, transcripts=["deploy qdrant on kubernetes now"]) as kit:
        await kit.next()
        await kit.speak(speech_clip(silence_s=1.0))
        events = await kit.until("conversation.item.input_audio_transcription.completed")
    options = kit.asr.streams[0].options
    assert options.language == "de" and options.prompt == "Kubernetes, Qdrant"
    deltas = [e["delta"] for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    assert deltas == ["deploy qdrant on kubernetes now"]  # "xhigh": the words go out with the final only
    completed = events[-1]
    assert [p["token"] for p in completed["logprobs"]] == ["deploy", " qdrant", " on", " kubernetes", " now"]
    assert all(p["logprob"] == pytest.approx(np.log(0.9), abs=1e-3) for p in completed["logprobs"])
    assert completed["logprobs"][1]["bytes"] == list(b" qdrant")


async def test_voice_by_id_and_a_ga_session_update_work_in_a_live_session():
    async with voice_session(replies=["Hello there."]) as kit:
        await kit.next()
        await kit.send({"type": "session.update", "session": GA_SESSION | {"tool_choice": "auto"}})
        updated_event = (await kit.until("session.updated"))[-1]
        updated = updated_event["session"]
        assert updated["audio"]["output"]["voice"] == {"id": "voice_joe"}
        await kit.say_text("hi")
        events = await kit.until("response.done")
    for event in [updated_event, *events]:  # the SDK's own event types parse all of it
        TypeAdapter(RealtimeServerEvent).validate_python(event)
    assert events[-1]["response"]["audio"]["output"]["voice"] == "voice_joe"
    assert events[-1]["response"]["status"] == "completed"
