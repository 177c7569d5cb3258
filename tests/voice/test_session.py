"""voice/session.py: one Realtime session driven through the voice test kit (tests/voice/kit.py): real VAD, turn
loop and router over a scripted recogniser, dialogue model and synthesiser, on a manual clock, with no server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from dsp import resample
from tests.voice.kit import MS_PER_CHAR, decode_output, speech_clip, voice_session
from voice.limits import SessionLimits

LONG_REPLY = "Sure, here is a long story. It goes on and on for a while before it ends."


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def one(events: list[dict], kind: str) -> dict:
    (event,) = [e for e in events if e["type"] == kind]
    return event


async def test_speech_in_gives_a_transcript_and_a_spoken_reply():
    async with voice_session(transcripts=["turn on the lights"], replies=["The lights are on. Anything else?"]) as kit:
        created = await kit.next()
        assert created["type"] == "session.created"
        assert created["session"]["audio"]["input"]["transcription"]["model"] == "scripted-asr"  # the server's default
        clip = speech_clip()
        await kit.speak(clip)
        events = await kit.until("response.done")
    kinds = types(events)
    turn = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
            "conversation.item.input_audio_transcription.completed", "response.created", "response.output_audio.delta",
            "response.output_audio.done", "response.done"]
    assert [kinds.index(k) for k in turn] == sorted(kinds.index(k) for k in turn), kinds
    started = one(events, "input_audio_buffer.speech_started")
    stopped = one(events, "input_audio_buffer.speech_stopped")
    assert 0 <= started["audio_start_ms"] < stopped["audio_end_ms"] <= len(clip) / 16
    committed = one(events, "input_audio_buffer.committed")
    completed = one(events, "conversation.item.input_audio_transcription.completed")
    assert completed["transcript"] == "turn on the lights" and completed["item_id"] == committed["item_id"]
    assert started["item_id"] == committed["item_id"]
    (stream,) = kit.asr.streams  # one utterance, finished, fed the speech and the silence that ended it (300 ms)
    assert stream.finished and 1.0 < stream.samples / 16000 <= stopped["audio_end_ms"] / 1000 + 0.3
    # told when the user fell silent (the recogniser may start its final then), the last time for good
    assert stream.speculated_at and len(stream.speculated_at) == stream.resumed + 1

    (request,) = kit.llm.requests
    assert request.messages[-1].role == "user" and request.messages[-1].content == "turn on the lights"
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert one(events, "response.output_audio_transcript.done")["transcript"] == "The lights are on. Anything else?"
    assert kit.tts.spoken == ["The lights are on.", "Anything else?"]
    audio = np.frombuffer(kit.audio(events, done["id"]), "<i2")  # 24 kHz PCM, the session's default output
    expected_ms = sum(len(s) for s in kit.tts.spoken) * MS_PER_CHAR
    assert abs(len(audio) / 24 - expected_ms) < 5 and np.abs(audio).max() > 4000
    metrics = kit.session.turns.metrics[-1]
    assert metrics.item_id == committed["item_id"] and metrics.response_id == done["id"]


async def test_response_cancel_stops_the_reply_and_the_model():
    async with voice_session(replies=[LONG_REPLY, "Fine."]) as kit:
        await kit.next()
        kit.llm.hold(after=7)  # "Sure, here is a long story. It" and then nothing, until released
        await kit.say_text("tell me a story")
        head = await kit.until("response.output_audio.delta")
        response_id = head[-1]["response_id"]
        await kit.llm.held()
        await kit.send({"type": "response.create", "event_id": "evt_second"})  # one response at a time
        await kit.send({"type": "response.cancel"})
        events = await kit.until("response.done")
        errors = [e["error"] for e in events if e["type"] == "error"]
        assert [(e["code"], e["event_id"]) for e in errors] == [
            ("conversation_already_has_active_response", "evt_second")]
        done = events[-1]["response"]
        assert (done["id"], done["status"], done["status_details"]["reason"]) == (response_id, "cancelled",
                                                                                 "client_cancelled")
        assert done["output"][0]["status"] == "incomplete"
        assert kit.llm.closed_early == 1  # the model's stream was closed, not left running
        assert not kit.session.turns.responding
        kit.llm.release()
        await kit.send({"type": "response.cancel"})  # nothing left to cancel
        assert (await kit.until("error"))[-1]["error"]["code"] == "response_cancel_not_active"
        await kit.say_text("and now?")
        after = await kit.until("response.done")
    assert not [e for e in after if e.get("response_id") == response_id]  # not one more event for the cancelled one
    assert after[-1]["response"]["status"] == "completed"
    assert one(after, "response.output_audio_transcript.done")["transcript"] == "Fine."


async def test_barge_in_cancels_the_reply_and_keeps_only_what_the_client_says_it_played():
    """Over a WebSocket the client plays the audio, so it truncates; the server only cancels. A client whose playback
    clock runs 15 ms ahead of ours is answered, not refused (OpenAI validates against the audio generated)."""
    async with voice_session(transcripts=["stop, what time is it"], replies=[LONG_REPLY, "It is noon."]) as kit:
        await kit.next()
        kit.llm.hold(after=7)
        await kit.say_text("tell me a story")
        head = await kit.until("response.output_audio.delta")
        response_id, item_id = head[-1]["response_id"], head[-1]["item_id"]
        await kit.llm.held()
        kit.clock.advance(0.125)  # our estimate: the client has played the first 125 ms of the reply
        clip = speech_clip()
        await kit.speak(clip[:16000])  # the user talks over it: the onset is in the first second
        events = await kit.until(lambda e: e["type"] == "response.done" and e["response"]["id"] == response_id)
        kinds = types(events)
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
        done = events[-1]["response"]
        assert (done["status"], done["status_details"]["reason"]) == ("cancelled", "turn_detected")
        assert "conversation.item.truncated" not in kinds
        # on speech_started the client cuts the item to what it played, by its own clock: 15 ms past ours
        await kit.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                        "audio_end_ms": 140})
        await kit.speak(clip[16000:])
        rest = await kit.until(lambda e: e["type"] == "response.done" and e["response"]["id"] != response_id)
        assert "error" not in types(rest)
        truncated = one(events + rest, "conversation.item.truncated")
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (item_id, 140)
        assert kit.session.turns.barge_ins == 1
        await kit.send({"type": "conversation.item.retrieve", "item_id": item_id})
        kept = (await kit.until("conversation.item.retrieved"))[-1]["item"]["content"][0]["transcript"]
    generated = done["output"][0]["content"][0]["transcript"]
    assert generated.startswith("Sure, here is a long story.")
    assert kept and generated.startswith(kept) and len(kept.split()) < len(generated.split())
    assert not [e for e in rest if e.get("response_id") == response_id and e["type"] == "response.output_audio.delta"]
    # the user's interruption is a turn of its own, answered with the conversation as the user heard it
    assert one(rest, "conversation.item.input_audio_transcription.completed")["transcript"] == "stop, what time is it"
    assert rest[-1]["response"]["status"] == "completed"
    second = kit.llm.requests[-1].messages
    assert [(m.role, m.content) for m in second[-3:]] == [("user", "tell me a story"), ("assistant", kept),
                                                          ("user", "stop, what time is it")]


async def test_where_the_server_knows_what_played_it_truncates_and_a_later_client_truncate_is_still_answered():
    async with voice_session(transcripts=["stop"], replies=[LONG_REPLY, "Okay."]) as kit:
        kit.session.turns.server_truncation = True  # as the WebRTC transport sets it: its track knows what played
        await kit.next()
        kit.llm.hold(after=7)
        await kit.say_text("tell me a story")
        head = await kit.until("response.output_audio.delta")
        response_id, item_id = head[-1]["response_id"], head[-1]["item_id"]
        await kit.llm.held()
        kit.clock.advance(0.125)
        await kit.speak()
        events = await kit.until(lambda e: e["type"] == "response.done" and e["response"]["id"] == response_id)
        events += await kit.until("conversation.item.truncated")  # right after the cancelled response's events
        assert events[-1]["audio_end_ms"] == 125
        generated_ms = kit.session.conversation.get(item_id).generated_ms
        # a client that truncates too (its clock ahead of ours, or at the very end of the audio) gets no error
        await kit.send({"type": "conversation.item.truncate", "item_id": item_id, "audio_end_ms": 140})
        await kit.send({"type": "conversation.item.truncate", "item_id": item_id,
                        "audio_end_ms": int(generated_ms) + 50})
        await kit.send({"type": "conversation.item.truncate", "item_id": item_id,
                        "audio_end_ms": int(generated_ms) + 5000})  # far past the audio: refused
        events += await kit.until("error")
        err = events[-1]["error"]
        assert (err["code"], err["param"]) == ("invalid_value", "audio_end_ms")
    cuts = [e["audio_end_ms"] for e in events if e["type"] == "conversation.item.truncated"]
    assert cuts == [125, 140, int(generated_ms)]


async def test_bad_client_events_get_an_error_and_the_session_goes_on():
    async with voice_session(replies=["Still here."]) as kit:
        await kit.next()
        await kit.send_raw("{not json")
        await kit.send({"type": "no.such.event", "event_id": "evt_1"})
        await kit.send({"type": "input_audio_buffer.append", "audio": "%%%not-base64%%%"})
        await kit.send({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {
            "format": {"type": "audio/mp3"}}}}})
        errors = [(await kit.until("error"))[-1]["error"] for _ in range(4)]
        assert [(e["code"], e["param"]) for e in errors] == [
            ("invalid_json", None), ("unknown_event_type", "type"), ("invalid_base64", "audio"),
            ("invalid_value", "session.audio.output.format")]
        assert errors[1]["event_id"] == "evt_1" and all(e["message"] for e in errors)
        assert kit.session.config.audio.output.format.type == "audio/pcm"  # the bad update changed nothing
        await kit.say_text("are you there", output_modalities=["text"])
        events = await kit.until("response.done")
    assert "error" not in types(events) and "response.output_audio.delta" not in types(events)
    assert one(events, "response.output_text.done")["text"] == "Still here."
    assert events[-1]["response"]["status"] == "completed"
    assert kit.session.errors_sent == 4


async def test_session_update_changes_the_output_format():
    async with voice_session(replies=["One two three.", "One two three."]) as kit:
        await kit.next()
        await kit.say_text("count")
        pcm = await kit.until("response.done")
        await kit.send({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {
            "format": {"type": "audio/pcmu"}}}}})
        updated = (await kit.until("session.updated"))[-1]
        assert updated["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
        await kit.say_text("count again")
        ulaw = await kit.until("response.done")
    expected_ms = len("One two three.") * MS_PER_CHAR
    assert pcm[-1]["response"]["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert ulaw[-1]["response"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    as_pcm = kit.audio(pcm)
    as_ulaw = kit.audio(ulaw)
    assert abs(len(as_pcm) / 48 - expected_ms) < 5  # 24 kHz, 2 bytes a sample
    assert abs(len(as_ulaw) / 8 - expected_ms) < 5  # 8 kHz, 1 byte a sample
    tone = decode_output(as_ulaw, {"type": "audio/pcmu"})
    assert np.abs(tone.astype(np.int32)).max() > 4000
    reference = resample(decode_output(as_pcm, {"type": "audio/pcm"}), 24000, 8000)
    n = min(len(reference), len(tone))
    assert np.corrcoef(reference[100:n - 100], tone[100:n - 100])[0, 1] > 0.95  # the same voice, re-encoded


async def test_session_update_changes_the_input_format():
    async with voice_session(transcripts=["go forward"]) as kit:
        await kit.next()
        await kit.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "format": {"type": "audio/pcma"}}}}})
        assert (await kit.until("session.updated"))[-1]["session"]["audio"]["input"]["format"] == {"type": "audio/pcma"}
        await kit.speak()  # A-law at 8 kHz now
        events = await kit.until("conversation.item.input_audio_transcription.completed")
    assert "input_audio_buffer.speech_stopped" in types(events) and "error" not in types(events)
    assert events[-1]["transcript"] == "go forward"
    (stream,) = kit.asr.streams
    assert 1.0 < stream.samples / 16000 < len(speech_clip()) / 16000  # decoded and resampled to 16 kHz


async def test_manual_commit_without_turn_detection():
    async with voice_session(transcripts=["seven of clubs"], replies=["Noted."]) as kit:
        await kit.next()
        await kit.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": None}}}})
        await kit.until("session.updated")
        await kit.send({"type": "input_audio_buffer.commit", "event_id": "evt_empty"})
        error = (await kit.until("error"))[-1]["error"]
        assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "evt_empty")
        await kit.speak()
        await kit.send({"type": "input_audio_buffer.commit"})
        events = await kit.until("conversation.item.input_audio_transcription.completed")
        assert "input_audio_buffer.speech_started" not in types(events)  # no VAD in manual mode
        assert events[-1]["transcript"] == "seven of clubs"
        await kit.until("conversation.item.done")
        assert kit.received() == [] and kit.llm.requests == []  # no response until the client asks
        await kit.send({"type": "response.create"})
        done = await kit.until("response.done")
    assert done[-1]["response"]["status"] == "completed"
    assert kit.llm.requests[-1].messages[-1].content == "seven of clubs"


async def test_pushed_pcm_makes_a_turn_like_appended_audio():
    """A media transport (WebRTC's track) pushes 48 kHz PCM straight into the session."""
    async with voice_session(transcripts=["go forward"], replies=["Going."]) as kit:
        await kit.next()
        pcm48 = resample(speech_clip(), 16000, 48000)
        for i in range(0, len(pcm48), 960):
            assert await kit.session.push_pcm(pcm48[i:i + 960], 48000)
        events = await kit.until("response.done")
    assert one(events, "conversation.item.input_audio_transcription.completed")["transcript"] == "go forward"
    assert events[-1]["response"]["status"] == "completed"
    assert kit.audio(events) and kit.tts.spoken == ["Going."]


async def test_every_wire_form_of_an_append_feeds_the_same_audio():
    """Compact and spaced JSON take the session's hot path; an escaped slash, an event_id after the audio and
    key order another than the usual go through the JSON parser; all four are the same audio to VAD."""
    import base64
    import json

    clip = speech_clip()
    payloads = [base64.b64encode(clip[i:i + 1600].astype("<i2").tobytes()).decode() for i in range(0, len(clip), 1600)]
    forms = [
        lambda a: json.dumps({"type": "input_audio_buffer.append", "audio": a}, separators=(",", ":")),
        lambda a: json.dumps({"type": "input_audio_buffer.append", "audio": a}),
        lambda a: json.dumps({"type": "input_audio_buffer.append", "audio": a}).replace("/", "\\/"),
        lambda a: json.dumps({"audio": a, "type": "input_audio_buffer.append", "event_id": "evt_1"}),
    ]
    spans = []
    for form in forms:
        async with voice_session(session={"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}) as kit:
            await kit.next()  # session.created
            for a in payloads:
                await kit.send_raw(form(a))
            events = await kit.until("input_audio_buffer.speech_stopped")
            assert "error" not in types(events)
            started = one(events, "input_audio_buffer.speech_started")
            spans.append((started["audio_start_ms"], events[-1]["audio_end_ms"]))
    assert len(set(spans)) == 1, spans
    async with voice_session() as kit:
        await kit.next()
        await kit.send_raw('{"type":"input_audio_buffer.append","audio":"not base64!"}')  # hot path, bad payload
        (err,) = await kit.until("error")
        assert (err["error"]["code"], err["error"]["param"]) == ("invalid_base64", "audio")


async def test_the_final_transcript_words_and_the_asked_language_and_prompt():
    """`transcription.language`/`prompt` reach the recogniser's stream; with somagent events on, the final's word
    timings and confidences follow the completed transcript (times into the item's audio)."""
    from adapters.asr.base import RecognitionOptions

    session = {"somagent": {"events": True}, "audio": {"input": {"transcription": {
        "model": "scripted-asr", "language": "de", "prompt": "Ortsnamen: Wuppertal"}}}}
    async with voice_session(transcripts=["turn on the lights"], replies=["Done."], session=session) as kit:
        await kit.next()
        await kit.speak()
        events = await kit.until("somagent.input_audio_transcription.words")
        started = one(events, "input_audio_buffer.speech_started")
        completed = one(events, "conversation.item.input_audio_transcription.completed")
        words = events[-1]
        assert types(events).index(completed["type"]) < len(events) - 1
        assert words["item_id"] == completed["item_id"] and words["model"] == "scripted-asr"
        assert words["audio_start_ms"] == started["audio_start_ms"] and words["confidence"] == 0.9
        assert [w["word"] for w in words["words"]] == ["turn", "on", "the", "lights"]
        ends = [w["end_ms"] for w in words["words"]]
        assert ends == sorted(ends) and all(w["start_ms"] < w["end_ms"] for w in words["words"])
        assert kit.asr.streams[0].options == RecognitionOptions(language="de", prompt="Ortsnamen: Wuppertal")
    async with voice_session(transcripts=["turn on the lights"], replies=["Done."]) as kit:  # somagent events off
        await kit.next()
        await kit.speak()
        events = await kit.until("response.done")
        assert "conversation.item.input_audio_transcription.completed" in types(events)
        assert not [t for t in types(events) if t.startswith("somagent.")]
        assert kit.asr.streams[0].options == RecognitionOptions()


def _user(text: str, item_id: str | None = None) -> dict:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {**item, "id": item_id} if item_id else item


async def test_a_response_with_its_own_input_sees_only_that_and_leaves_the_conversation_alone():
    async with voice_session(replies=["First.", "Out of band.", "Blank."]) as kit:
        await kit.next()
        await kit.send({"type": "conversation.item.create", "item": _user("remember the red door", "item_red")})
        await kit.say_text("and the blue window")
        await kit.until("response.done")
        await kit.send({"type": "response.create", "response": {
            "conversation": "none", "output_modalities": ["text"], "metadata": {"kind": "summary"},
            "input": [{"type": "item_reference", "id": "item_red"}, _user("summarise that")]}})
        side = await kit.until("response.done")
        await kit.send({"type": "response.create", "response": {"conversation": "none", "input": [],
                                                                "output_modalities": ["text"]}})
        blank = await kit.until("response.done")
        await kit.send({"type": "response.create", "response": {"input": [
            {"type": "item_reference", "id": "item_nope"}]}})
        err = (await kit.until("error"))[-1]["error"]
    instructions = kit.session.config.instructions
    assert [(m.role, m.content) for m in kit.llm.requests[1].messages] == [
        ("system", instructions), ("user", "remember the red door"), ("user", "summarise that")]
    assert [(m.role, m.content) for m in kit.llm.requests[2].messages] == [("system", instructions)]
    done = side[-1]["response"]
    assert (done["conversation_id"], done["metadata"], done["output"][0]["content"][0]["text"]) == (
        None, {"kind": "summary"}, "Out of band.")
    assert "conversation.item.added" not in types(side + blank)  # out of band: nothing joins the conversation
    assert (err["code"], err["param"]) == ("item_not_found", "response.input[0].id")
    assert len(kit.llm.requests) == 3


async def test_live_responses_are_bounded_per_session_and_rate_limits_say_how_many_are_left():
    async with voice_session() as kit:
        MAX_RESPONSES = kit.session.limits.max_responses  # noqa: N806
        await kit.next()
        kit.llm.hold(after=1, count=MAX_RESPONSES)
        for _ in range(MAX_RESPONSES + 1):
            await kit.send({"type": "response.create", "response": {"conversation": "none",
                                                                    "output_modalities": ["text"]}})
        err = (await kit.until("error"))[-1]["error"]
        assert err["code"] == "too_many_responses"
        kit.llm.release()
        events = []
        for _ in range(MAX_RESPONSES):
            events += await kit.until("rate_limits.updated")
        await kit.send({"type": "response.create", "response": {"conversation": "none",
                                                                "output_modalities": ["text"]}})
        events += await kit.until("response.done")
    assert len(kit.llm.requests) == MAX_RESPONSES + 1
    limits = [e["rate_limits"][0] for e in events if e["type"] == "rate_limits.updated"]
    assert {(lim["name"], lim["limit"]) for lim in limits} == {("requests", MAX_RESPONSES)}
    assert limits[-1]["remaining"] == MAX_RESPONSES
    assert [e["response"]["status"] for e in events if e["type"] == "response.done"] == ["completed"] * (
        MAX_RESPONSES + 1)


async def test_transcript_deltas_arrive_while_the_user_speaks_and_add_up_to_the_transcript():
    async with voice_session(transcripts=["please turn on all the lights in the kitchen"], replies=["Done."]) as kit:
        await kit.next()
        clip = speech_clip()
        for at in range(0, len(clip), 3200):  # 200 ms at a time, the recogniser's partials keeping up
            await kit.speak(clip[at:at + 3200])
            await asyncio.sleep(0.01)
        events = await kit.until("conversation.item.input_audio_transcription.completed")
    kinds = types(events)
    deltas = [e["delta"] for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    assert len(deltas) > 1
    first = kinds.index("conversation.item.input_audio_transcription.delta")
    assert first < kinds.index("input_audio_buffer.speech_stopped")  # live, not only at the end
    assert "".join(deltas) == one(events, "conversation.item.input_audio_transcription.completed")["transcript"]


async def test_protocol_crashers_get_an_error_and_the_session_goes_on():
    """A 5000-digit integer and JSON nested 5000 deep once closed the socket; a session.update nested 300 deep was
    swapped in and then failed every later update."""
    def nested(depth: int) -> str:
        return '{"a":' * depth + "1" + "}" * depth

    async with voice_session(replies=["Still here."]) as kit:
        await kit.next()
        await kit.send_raw('{"type": "response.create", "event_id": "evt_big", "n": ' + "9" * 5000 + "}")
        await kit.send_raw('{"type": "conversation.item.create", "event_id": "evt_deep", "x": ' + nested(5000) + "}")
        await kit.send_raw('{"type": "session.update", "event_id": "evt_trace", "session": {"type": "realtime", '
                           '"tracing": {"metadata": ' + nested(300) + "}}}")
        await kit.send_raw('{"type": "session.update", "event_id": "evt_ok", "session": {"type": "realtime", '
                           '"tracing": {"metadata": ' + nested(20) + '}, "instructions": "Be brief."}}')
        events = await kit.until("session.updated")
        await kit.say_text("are you there")
        events += await kit.until("response.done")
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["invalid_json", "nesting_too_deep", "nesting_too_deep"]
    assert errors[2]["event_id"] == "evt_trace"
    updated = one(events, "session.updated")["session"]
    assert updated["instructions"] == "Be brief."
    assert events[-1]["response"]["status"] == "completed"


async def test_the_conversation_and_the_requests_are_bounded_with_clear_errors():
    limits = SessionLimits(max_items=3, max_item_chars=100, max_instructions_chars=50, events_per_s=1.0,
                           events_burst=8)  # 10 events below: the last 2 over
    async with voice_session(limits=limits) as kit:
        await kit.next()
        for i in range(4):
            await kit.send({"type": "conversation.item.create", "item": _user(f"note {i}", f"item_{i}")})
        await kit.send({"type": "conversation.item.create", "item": _user("x" * 101)})
        await kit.send({"type": "session.update", "session": {"type": "realtime", "instructions": "y" * 51}})
        await kit.send({"type": "response.create", "response": {"instructions": "z" * 51}})
        for _ in range(3):
            await kit.send({"type": "conversation.item.retrieve", "item_id": "item_3"})
        events = [await kit.next() for _ in range(4 * 2 + 1 + 3 + 3)]
        assert [m.content for m in kit.session.conversation.messages("")] == ["note 1", "note 2", "note 3"]
    deleted = [e["item_id"] for e in events if e["type"] == "conversation.item.deleted"]
    assert deleted == ["item_0"]  # the oldest went first, and the client was told
    codes = [(e["error"]["code"], e["error"]["param"]) for e in events if e["type"] == "error"]
    assert codes == [("item_too_large", "item"), ("instructions_too_large", "session.instructions"),
                     ("instructions_too_large", "response.instructions"), ("rate_limited", None),
                     ("rate_limited", None)]
    assert types(events).count("conversation.item.retrieved") == 1


async def test_a_client_that_stops_reading_is_dropped_not_buffered():
    async with voice_session(replies=[LONG_REPLY], limits=SessionLimits(max_outbox_events=40)) as kit:
        await kit.next()
        await kit.say_text("tell me a story")  # nobody reads while the reply streams
        for _ in range(200):  # bounded: the reply is a few hundred events
            if kit.session.overflow_reason is not None:
                break
            await asyncio.sleep(0.01)
        reason = kit.session.overflow_reason
        assert reason is not None and reason.startswith("slow_consumer")
        assert await kit.session.next_event() is None  # what waited is gone: the transport closes at once
        assert kit.session.outbox.qsize() == 0


async def test_a_manual_input_buffer_is_bounded_and_says_so_once():
    limits = SessionLimits(max_buffer_s=1.0)
    async with voice_session(session={"audio": {"input": {"turn_detection": None}}}, transcripts=["long one"],
                             limits=limits) as kit:
        await kit.next()
        await kit.speak(speech_clip(silence_s=2.0))  # about 3 s of audio into a 1 s buffer
        await kit.send({"type": "input_audio_buffer.commit"})
        events = await kit.until("input_audio_buffer.committed")
        errors = [e["error"] for e in events if e["type"] == "error"]
        assert [e["code"] for e in errors] == ["input_audio_buffer_full"]  # once, not per dropped frame
        assert kit.asr.streams[0].samples <= 16000 * 1.0  # the recogniser got the first second alone
        await kit.speak(speech_clip(silence_s=0.0)[:8000])  # after the commit a new buffer takes audio again
        await kit.send({"type": "input_audio_buffer.commit"})
        again = await kit.until("input_audio_buffer.committed")
    assert not [e for e in again if e["type"] == "error"]


async def test_an_utterance_that_never_pauses_ends_at_the_buffer_limit():
    """Loud broadband noise is speech to webrtcvad all along: without the bound one utterance grows forever."""
    noise = np.random.default_rng(2).normal(0, 3000, 16000 * 3).clip(-32768, 32767).astype(np.int16)
    limits = SessionLimits(max_buffer_s=1.0)
    async with voice_session(session={"audio": {"input": {"turn_detection": {"type": "server_vad",
                                                                              "create_response": False}}}},
                             limits=limits) as kit:
        await kit.next()
        await kit.speak(noise)
        await kit.send({"type": "input_audio_buffer.clear"})
        events = await kit.until("input_audio_buffer.cleared")
    stops = [e for e in events if e["type"] == "input_audio_buffer.speech_stopped"]
    commits = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    assert len(stops) >= 2 and len(commits) >= 2  # cut at the limit, and the next utterance begins
    assert all(s.samples <= 16000 * 1.1 for s in kit.asr.streams)


async def test_a_policy_rule_met_for_its_turns_escalates_and_switches_the_persona():
    from router import Topic
    from voice.policy import parse_rules

    rules = parse_rules([{"name": "long-talker", "metric": "duration_s", "above": 0.5, "turns": 2,
                          "persona": "calm-support"}])
    async with voice_session(session={"somagent": {"events": True}}, transcripts=["one", "two"],
                             replies=["A.", "B."], policy=rules) as kit:
        bus = kit.router.bus.subscribe({Topic.POLICY_ESCALATION})
        await kit.next()
        await kit.speak()
        first = await kit.until("response.done")
        assert not [e for e in first if e["type"] == "somagent.policy.escalation"]  # one turn: not yet
        await kit.speak()
        second = await kit.until("response.done")
        (esc,) = [e for e in second if e["type"] == "somagent.policy.escalation"]
        assert (esc["rule"], esc["turns"], esc["persona"], esc["previous_persona"]) == (
            "long-talker", 2, "calm-support", None)
        assert kit.session.ctx.persona == "calm-support" and kit.session.turns.ctx.persona == "calm-support"
        published = await bus.get(timeout=5)
        assert published.payload["rule"] == "long-talker" and published.payload["session_id"] == kit.session.id


async def test_a_persona_set_by_policy_outlives_updates_that_name_none():
    from voice.policy import parse_rules

    rules = parse_rules([{"name": "any", "metric": "duration_s", "above": 0.5, "persona": "calm-support"}])
    async with voice_session(transcripts=["one"], replies=["A."], policy=rules,
                             session={"somagent": {"persona": "sales"}}) as kit:
        await kit.next()
        assert kit.session.ctx.persona == "sales"
        await kit.speak()
        await kit.until("response.done")
        assert kit.session.ctx.persona == "calm-support"
        await kit.send({"type": "session.update", "session": {"instructions": "Be brief."}})
        await kit.until("session.updated")
        assert kit.session.ctx.persona == "calm-support"  # an update about something else keeps it
        await kit.send({"type": "session.update", "session": {"somagent": {"persona": "sales"}}})
        await kit.until("session.updated")
        assert kit.session.ctx.persona == "sales"  # one that names it sets it


async def test_a_live_turn_feeds_the_quality_aggregates_and_conversation_events():
    """The recogniser's confidence is the turn's WER proxy (into the model's live quality) and the turn's latency
    per stage goes to `conversation.events`, with the session's conversation and tenant."""
    from router.events import Topic
    from router.roles import Role

    async with voice_session(transcripts=["turn on the lights"], replies=["Done."]) as kit:
        sub = kit.router.bus.subscribe({Topic.CONVERSATION})
        await kit.next()
        await kit.speak()
        await kit.until("response.done")
        for _ in range(50):  # bounded: the turn's metrics follow its response
            if sub.queue.qsize() >= 2:
                break
            await asyncio.sleep(0.01)
        events = [sub.queue.get_nowait().payload for _ in range(sub.queue.qsize())]
        quality = next(e for e in events if e["event"] == "transcription.quality")
        assert (quality["model"], quality["confidence"], quality["wer_proxy"]) == ("scripted-asr", 0.9, 0.1)
        assert quality["session_id"] == kit.session.ctx.session_id
        latency = next(e for e in events if e["event"] == "turn.latency")
        assert latency["item_id"] == quality["item_id"] and "voice_to_voice_ms" in latency["stages_ms"]
        live = kit.router.state.quality.live[(Role.SPEECH_RECOGNITION, "scripted-asr")]
        assert live.n == 1 and live.mean == pytest.approx(0.9)
