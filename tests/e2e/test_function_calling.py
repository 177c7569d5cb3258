"""Function calling end to end, with the official SDK as the client and a local chat server that streams tool calls
the way OpenAI-compatible servers do: the model's call comes out as a `function_call` item with its arguments
streamed, the client's `function_call_output` goes back to the model as a tool message, and the answer is spoken."""

from __future__ import annotations

import asyncio
import base64
import json

from openai import AsyncOpenAI
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from adapters.llm.openai_compat import OpenAICompatConfig
from router.defaults import build_default_router
from tests.e2e.helpers import server_thread
from tests.router.fake_chat_server import FakeChatServer, Script
from voice.config import Settings

STRICT = TypeAdapter(RealtimeServerEvent)
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city now.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ARGUMENTS = '{"city": "Paris", "unit": "celsius"}'


def _router(fake: FakeChatServer):
    return build_default_router(OpenAICompatConfig(base_url=fake.base_url, model="tool-llm", timeout_s=10),
                                database_url=None)


async def _until_done(conn) -> list:
    events = []
    async with asyncio.timeout(30):
        async for event in conn:
            events.append(event)
            if event.type == "response.done":
                return events
    raise AssertionError("the connection ended before response.done")


def _strict(events: list) -> None:
    for event in events:
        STRICT.validate_python(event.model_dump(mode="json", exclude_unset=True))


async def test_a_tool_call_then_its_result_spoken(fake_chat: FakeChatServer) -> None:
    fake_chat.script("tool-llm", Script(tokens=(), tool_calls=(("get_weather", ARGUMENTS),)),
                     Script(tokens=("It", " is", " sunny", " in", " Paris.")))
    with server_thread(Settings(), _router(fake_chat)) as url:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-anything")
        async with client.realtime.connect(model="gpt-realtime") as conn:
            assert (await conn.recv()).type == "session.created"
            await conn.session.update(session={"type": "realtime", "tools": [WEATHER], "tool_choice": "auto"})
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What's the weather in Paris?"}]})
            await conn.response.create()
            first = await _until_done(conn)
            call = next(e for e in first if e.type == "response.function_call_arguments.done")
            await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id,
                                                      "output": json.dumps({"forecast": "sunny", "c": 21})})
            await conn.response.create()
            second = await _until_done(conn)
    _strict(first + second)
    kinds = [e.type for e in first if e.type != "session.updated"]
    deltas = [e for e in first if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) > 1 and "".join(d.delta for d in deltas) == ARGUMENTS  # streamed in pieces, as sent
    head = [k for k in kinds if k not in ("response.function_call_arguments.delta",)]
    assert head[head.index("response.created"):] == [
        "response.created", "response.output_item.added", "conversation.item.added",
        "response.function_call_arguments.done", "response.output_item.done", "conversation.item.done",
        "response.done"]
    assert "response.output_audio.delta" not in kinds and "response.content_part.added" not in kinds
    assert (call.name, call.arguments) == ("get_weather", ARGUMENTS)
    (item,) = first[-1].response.output  # a reply that only calls a tool has no empty message
    assert (item.type, item.call_id, item.name, item.status) == ("function_call", call.call_id, "get_weather",
                                                                  "completed")
    assert first[-1].response.status == "completed"
    # the second response speaks from the result
    assert second[-1].response.status == "completed"
    transcript = next(e for e in second if e.type == "response.output_audio_transcript.done").transcript
    assert transcript == "It is sunny in Paris."
    audio = b"".join(base64.b64decode(e.delta) for e in second if e.type == "response.output_audio.delta")
    assert len(audio) > 24000 * 2 * 0.3
    # what the chat server was sent: the tools, then the call and its result as chat-completions messages
    asked, answered = fake_chat.requests_for("tool-llm")
    assert asked.body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["parameters"]}}]
    assert asked.body["tool_choice"] == "auto"
    assert answered.body["messages"][-3]["content"] == "What's the weather in Paris?"
    assert answered.body["messages"][-2:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": {"name": "get_weather", "arguments": ARGUMENTS}}]},
        {"role": "tool", "content": json.dumps({"forecast": "sunny", "c": 21}), "tool_call_id": call.call_id}]


async def test_words_then_two_calls_are_three_items_and_tool_choice_none_offers_none(fake_chat: FakeChatServer) -> None:
    fake_chat.script("tool-llm", Script(tokens=("Let", " me", " check."), tool_calls=(
        ("get_weather", '{"city": "Oslo"}'), ("get_weather", '{"city": "Rome"}'))), Script(tokens=("Fine.",)))
    with server_thread(Settings(), _router(fake_chat)) as url:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-anything")
        async with client.realtime.connect(model="gpt-realtime") as conn:
            assert (await conn.recv()).type == "session.created"
            await conn.session.update(session={"type": "realtime", "tools": [WEATHER], "output_modalities": ["text"]})
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Oslo or Rome, which is warmer?"}]})
            await conn.response.create()
            first = await _until_done(conn)
            await conn.response.create(response={"tool_choice": "none"})
            second = await _until_done(conn)
    _strict(first + second)
    output = first[-1].response.output
    assert [o.type for o in output] == ["message", "function_call", "function_call"]
    assert output[0].content[0].text == "Let me check."
    assert [json.loads(o.arguments)["city"] for o in output[1:]] == ["Oslo", "Rome"]
    assert len({o.call_id for o in output[1:]}) == 2
    done = [e for e in first if e.type == "response.function_call_arguments.done"]
    assert [e.output_index for e in done] == [1, 2]
    _, plain = fake_chat.requests_for("tool-llm")
    assert "tools" not in plain.body  # tool_choice none: the model is offered nothing
    # the calls have no outputs: the context leaves them out rather than send a call left unanswered
    assert not any(m.get("tool_calls") for m in plain.body["messages"])


async def test_a_model_that_calls_no_tools_speaks_the_result_as_text(fake_chat: FakeChatServer) -> None:
    fake_chat.script("tool-llm", Script(status=503))  # the tool-calling model is down: the embedded one answers
    with server_thread(Settings(), _router(fake_chat)) as url:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-anything")
        async with client.realtime.connect(model="gpt-realtime") as conn:
            assert (await conn.recv()).type == "session.created"
            await conn.session.update(session={"type": "realtime", "tools": [WEATHER], "output_modalities": ["text"]})
            await conn.conversation.item.create(item={"type": "function_call", "call_id": "call_1",
                                                      "name": "get_weather", "arguments": '{"city": "Paris"}'})
            await conn.conversation.item.create(item={"type": "function_call_output", "call_id": "call_1",
                                                      "output": "sunny, 21 degrees"})
            await conn.response.create()
            events = await _until_done(conn)
    _strict(events)
    text = next(e for e in events if e.type == "response.output_text.done").text
    assert text == "get_weather says: sunny, 21 degrees"
    assert fake_chat.requests_for("tool-llm")  # it was asked first
