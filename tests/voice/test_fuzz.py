"""Generated client events of every type (hypothesis), thousands of them, into one session while another session
on the same router holds a conversation: the fuzzed session answers each bad event with an `error` that names a
client mistake (never `server_error`, which would be our bug), stays usable, and the other session gets every
answer. The three crashers of the hardening issue have their own regression test
(tests/voice/test_session.py::test_protocol_crashers_get_an_error_and_the_session_goes_on); the WebSocket framing
around the same handler is covered by tests/e2e/test_bad_input.py."""

from __future__ import annotations

import asyncio
import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.voice.kit import encode_input, speech_clip, voice_session
from voice.limits import SessionLimits
from voice.session import RealtimeSession

EXAMPLES = 30  # x 60-150 events: about 3000 events a run
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
IDS = st.sampled_from(["item_a", "item_b", "resp_x", "root", "", "x" * 300]) | st.text(max_size=12)


def maybe(value: st.SearchStrategy) -> st.SearchStrategy:
    """A well-typed value most of the time, anything JSON now and then."""
    return st.one_of(*[value] * 7, JSON)


def obj(required: dict[str, st.SearchStrategy] | None = None, **optional: st.SearchStrategy) -> st.SearchStrategy:
    """An object with the required fields and any of the optional ones (the values drawn from their own
    strategies, which are mostly well-typed: one junk value in an event makes it all invalid)."""
    return st.fixed_dictionaries(required or {}, optional=optional)


FORMAT = st.sampled_from([{"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcm", "rate": 16000},
                          {"type": "audio/pcmu"}, {"type": "audio/pcma"}, {"type": "audio/opus"},
                          {"type": "audio/pcm", "rate": 44100}, {"type": "audio/ogg"}])
TURN = st.one_of(st.none(), obj({"type": st.sampled_from(["server_vad", "semantic_vad", "push_to_talk"])},
                                threshold=st.floats(-1, 2), silence_duration_ms=st.integers(-10, 20000),
                                prefix_padding_ms=st.integers(-10, 6000), create_response=st.booleans(),
                                interrupt_response=st.booleans(), eagerness=st.sampled_from(["low", "high", "x"])))
TOOL = obj({"type": st.sampled_from(["function", "mcp", "web"])}, name=st.text(max_size=10),
           parameters=st.just({"type": "object", "properties": {}}), server_label=st.text(max_size=5))
SESSION = obj(
    type=st.sampled_from(["realtime", "transcription", None]), instructions=st.text(max_size=50),
    output_modalities=st.sampled_from([["audio"], ["text"], ["audio", "text"], []]),
    max_output_tokens=st.one_of(st.integers(-5, 5000), st.just("inf")),
    tools=st.lists(TOOL, max_size=3), tool_choice=st.sampled_from(["auto", "none", "required", "sometimes"]),
    truncation=st.sampled_from(["auto", "disabled", {"type": "retention_ratio", "retention_ratio": 0.5}]),
    tracing=st.sampled_from(["auto", None, {"workflow_name": "w"}]), reasoning=obj(effort=st.text(max_size=6)),
    include=st.lists(st.text(max_size=10), max_size=2),
    audio=obj(input=obj(format=FORMAT, turn_detection=TURN,
                        noise_reduction=st.one_of(st.none(), obj(type=st.sampled_from(["near_field", "far"]),
                                                                 strength=st.floats(-1, 2))),
                        transcription=st.one_of(st.none(), obj(language=st.text(max_size=3),
                                                               languages=st.lists(st.text(max_size=3), max_size=3),
                                                               delay=st.sampled_from(["low", "xhigh", "x"]),
                                                               keywords=st.lists(st.text(max_size=5), max_size=3)))),
              output=obj(format=FORMAT, voice=st.one_of(st.text(max_size=8), obj(id=st.text(max_size=8))),
                         speed=st.floats(0, 3))),
    somagent=obj(events=st.booleans(), persona=st.text(max_size=10)),
)
CONTENT = obj({"type": st.sampled_from(["input_text", "input_audio", "text", "output_text", "image"])},
              text=st.text(max_size=40), audio=st.text(max_size=20), transcript=st.text(max_size=20))
ITEM = st.one_of(
    obj({"type": st.just("message"), "role": st.sampled_from(["user", "assistant", "system", "tool"])},
        id=IDS, content=st.lists(CONTENT, max_size=3), status=st.sampled_from(["completed", "in_progress"])),
    obj({"type": st.just("function_call")}, id=IDS, call_id=st.text(max_size=6), name=st.text(max_size=6),
        arguments=st.text(max_size=30)),
    obj({"type": st.just("function_call_output")}, id=IDS, call_id=st.text(max_size=6), output=st.text(max_size=30)),
    obj({"type": st.just("item_reference")}, id=IDS),
)
# well-formed ones too, so that the state the bad events meet has items, responses and changed settings in it
GOOD_ITEM = st.one_of(
    st.builds(lambda t, i: {"type": "message", "role": "user", "id": i,
                            "content": [{"type": "input_text", "text": t}]}, st.text(max_size=40), IDS),
    st.builds(lambda t: {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": t}]},
              st.text(max_size=40)),
    st.builds(lambda c, o: {"type": "function_call_output", "call_id": c, "output": o}, st.text(min_size=1,
              max_size=6), st.text(max_size=20)),
)
GOOD_SESSION = st.fixed_dictionaries({"type": st.just("realtime")}, optional={
    "instructions": st.text(max_size=40), "output_modalities": st.sampled_from([["audio"], ["text"]]),
    "audio": st.sampled_from([{"input": {"turn_detection": None}}, {"input": {"turn_detection": {
        "type": "server_vad", "silence_duration_ms": 200}}}, {"input": {"format": {"type": "audio/pcmu"}}},
        {"input": {"noise_reduction": {"type": "near_field"}}}, {"input": {"transcription": None}},
        {"output": {"voice": {"id": "joe"}}}, {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}]),
    "tools": st.just([{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]),
})
RESPONSE = obj(
    conversation=st.sampled_from(["auto", "none", "other"]), instructions=st.text(max_size=30),
    output_modalities=st.sampled_from([["audio"], ["text"], ["video"]]), max_output_tokens=st.integers(-1, 5000),
    metadata=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    input=st.lists(ITEM, max_size=4), tools=st.lists(TOOL, max_size=2),
    tool_choice=st.one_of(st.sampled_from(["auto", "none"]), obj(type=st.just("function"), name=st.text(max_size=4))),
    audio=obj(output=obj(voice=st.one_of(st.text(max_size=6), obj(id=st.text(max_size=6))))),
)
AUDIO = st.one_of(st.binary(max_size=3000).map(lambda b: base64.b64encode(b).decode()),
                  st.text(max_size=40), st.just("!!!not base64"), st.just(""))


def event(kind: str, **fields: st.SearchStrategy) -> st.SearchStrategy:
    """An event of `kind`: its fields now and then junk, and an unknown field now and then."""
    return obj({"type": st.just(kind)}, event_id=st.text(max_size=10),
               **{k: maybe(v) for k, v in fields.items()}).map(json.dumps)


# real speech, 24 kHz PCM (the default format) in 0.5 s appends: VAD, endpointing and recognition run too
SPEECH = [json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"".join(chunk)).decode()})
          for chunk in (lambda c: [c[i:i + 5] for i in range(0, len(c), 5)])(
              encode_input(speech_clip(), {"type": "audio/pcm", "rate": 24000}))]
SPOKEN = json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(
    b"".join(encode_input(speech_clip(), {"type": "audio/pcm", "rate": 24000}))).decode()})  # a whole utterance
EVENTS = st.one_of(
    event("session.update", session=SESSION),
    obj({"type": st.just("session.update"), "session": GOOD_SESSION}).map(json.dumps),
    obj({"type": st.just("conversation.item.create"), "item": GOOD_ITEM}).map(json.dumps),
    st.just(json.dumps({"type": "response.create", "response": {"output_modalities": ["text"]}})),
    st.sampled_from(SPEECH), st.just(SPOKEN),
    event("input_audio_buffer.append", audio=AUDIO),
    event("input_audio_buffer.commit"), event("input_audio_buffer.clear"), event("output_audio_buffer.clear"),
    event("conversation.item.create", item=ITEM, previous_item_id=IDS),
    event("conversation.item.delete", item_id=IDS), event("conversation.item.retrieve", item_id=IDS),
    event("conversation.item.truncate", item_id=IDS, content_index=st.integers(-2, 3),
          audio_end_ms=st.integers(-2**40, 2**40)),
    event("response.create", response=RESPONSE), event("response.cancel", response_id=IDS),
    event("somagent.unknown", payload=JSON), JSON.map(json.dumps),
    st.text(max_size=60),  # not JSON at all
    st.sampled_from(['{"type": "input_audio_buffer.append", "audio": "' + "A" * 5 + '"}',  # the fast path
                     '{"type": "input_audio_buffer.append", "audio": "AA\\u0041A"}',
                     '{"type": "response.create", "n": ' + "9" * 5000 + "}",
                     '{"a":' * 5000 + "1" + "}" * 5000,
                     '{"type": "session.update", "session": {"tracing": {"metadata": ' + '{"a":' * 300 + "1"
                     + "}" * 300 + "}}}"]),
)
LIMITS = SessionLimits(events_per_s=1e9, events_burst=10**9)  # every generated event reaches its handler


async def _drive(fuzz: list[str]) -> None:
    async with voice_session(replies=["Fine, thanks."] * 400, limits=LIMITS) as kit:
        healthy = RealtimeSession(router=kit.router, config=kit.session.config, clock=kit.clock)
        await healthy.start()
        try:
            await kit.next()  # session.created
            answers = 0
            for i, raw in enumerate(fuzz):
                await kit.send_raw(raw)
                errors = [e for e in kit.received() if e["type"] == "error"]
                assert not [e for e in errors if e["error"]["code"] == "server_error"], errors
                if i % 40 == 0:  # the other session talks throughout, and each of its turns is answered
                    await _turn(healthy, f"question {i}")
                    answers += 1
                await asyncio.sleep(0)  # responses the fuzz started run too
            assert answers == (len(fuzz) + 39) // 40
            # the fuzzed session still works: an update, a text turn
            await kit.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be kind.",
                                                                  "output_modalities": ["text"]}})
            await kit.until(lambda e: e["type"] == "session.updated" and e["session"]["instructions"] == "Be kind.")
            for _ in range(kit.session.limits.max_responses):  # responses the fuzz left running end or are cut
                await kit.send({"type": "response.cancel"})
            kit.received()
            await kit.say_text("are you still there", conversation="none")
            done = await kit.until(lambda e: e["type"] == "response.done" and e["response"]["status"] != "cancelled")
            assert done[-1]["response"]["status"] == "completed"
            assert not kit.session.closed
        finally:
            await healthy.aclose()


async def _turn(session: RealtimeSession, text: str) -> None:
    await session.handle({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    await session.handle({"type": "response.create", "response": {"output_modalities": ["text"]}})
    async with asyncio.timeout(10):
        while True:
            event = (await session.next_event()).to_wire()
            assert event["type"] != "error", event
            if event["type"] == "response.done":
                assert event["response"]["status"] == "completed", event
                return


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large])
@given(st.lists(EVENTS, min_size=60, max_size=150))
def test_generated_events_never_break_the_session_or_its_neighbour(fuzz: list[str]) -> None:
    asyncio.run(_drive(fuzz))
