"""openai-agents' `RealtimeRunner`, unchanged, pointed at our URL: a spoken turn, a function tool called and its
result spoken, and a barge-in during playback whose truncate (the client's own) is accepted with no `error`.

The dialogue model is a local chat server that streams tool calls as OpenAI-compatible servers do; recognition and
synthesis are the embedded ones (pocketsphinx, espeak-ng), so the user's words are real speech."""

from __future__ import annotations

import asyncio

import numpy as np
from agents import function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner

from adapters.llm.openai_compat import OpenAICompatConfig
from dsp import resample
from router.defaults import build_default_router
from tests.e2e.helpers import server_thread
from tests.helpers import speech
from tests.router.fake_chat_server import FakeChatServer, Script
from voice.config import Settings

RATE = 24000
# long enough that its speech is still being made when the user talks over it: espeak-ng says a part in ~50 ms
STORY = tuple(f" The story goes on, part {i}." for i in range(400))


def _speech24() -> bytes:
    pcm, rate = speech("goforward.wav")
    return resample(np.concatenate([pcm, np.zeros(rate, np.int16)]), rate, RATE).tobytes()


async def _talk(session, audio: bytes, chunk_ms: int = 100) -> None:
    """The user's microphone: audio a chunk at a time, twice as fast as real time."""
    step = RATE * 2 * chunk_ms // 1000
    for at in range(0, len(audio), step):
        await session.send_audio(audio[at:at + step])
        await asyncio.sleep(chunk_ms / 2000)


async def test_realtime_runner_talks_calls_a_tool_and_is_interrupted(fake_chat: FakeChatServer) -> None:
    fake_chat.script("agent-llm",
                     Script(tokens=(), tool_calls=(("get_weather", '{"city": "Paris"}'),)),
                     Script(tokens=("It", " is", " sunny", " in", " Paris.")),
                     Script(tokens=("Once upon a time.",) + STORY),
                     Script(tokens=("Okay,", " stopping.")))
    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city now."""
        cities.append(city)
        return f"sunny in {city}"

    agent = RealtimeAgent(name="assistant", instructions="Answer briefly.", tools=[get_weather])
    runner = RealtimeRunner(agent)
    router = build_default_router(OpenAICompatConfig(base_url=fake_chat.base_url, model="agent-llm", timeout_s=10),
                                  database_url=None)
    speech24 = _speech24()
    seen: list = []
    raw: list[dict] = []
    with server_thread(Settings(), router) as url:
        session = await runner.run(model_config={"url": url.replace("http://", "ws://") + "/v1/realtime",
                                                 "api_key": "sk-anything"})
        async with session:
            events = aiter(session)

            async def until(kind: str, timeout: float = 60.0, matching=lambda e: True):  # noqa: ANN202
                async with asyncio.timeout(timeout):
                    async for event in events:
                        seen.append(event)
                        if event.type == "raw_model_event" and event.data.type == "raw_server_event":
                            raw.append(event.data.data)
                        if event.type == kind and matching(event):
                            return event
                raise AssertionError(f"the session ended before {kind}")

            # turn 1: spoken question -> the model calls the tool -> the agent runs it -> the result is spoken
            await _talk(session, speech24)
            await until("tool_end")
            await until("audio_end")
            # turn 2: a long story, and the user talks over it while it plays
            await _talk(session, speech24)
            await until("audio")
            await _talk(session, speech24)
            interrupted = await until("audio_interrupted")
            await until("raw_model_event", matching=lambda e: e.data.type == "raw_server_event"
                        and e.data.data.get("type") == "conversation.item.truncated"
                        and e.data.data.get("item_id") == interrupted.item_id)
            await until("raw_model_event", matching=lambda e: e.data.type == "raw_server_event"
                        and e.data.data.get("type") == "response.done"
                        and e.data.data["response"]["status"] == "cancelled")

    assert cities == ["Paris"]
    kinds = [e.get("type") for e in raw]
    errors = [e for e in seen if e.type == "error"] + [e for e in raw if e.get("type") == "error"]
    assert errors == []  # the session.update the SDK sends, its truncate, its tool output: all accepted
    # the SDK truncates what its own clock says is still playing at each speech_started (the story; and, by its
    # clock, the end of the answer before it): each truncate is answered, none refused
    truncated = {e["item_id"]: e["audio_end_ms"] for e in raw if e.get("type") == "conversation.item.truncated"}
    assert interrupted.item_id in truncated and truncated[interrupted.item_id] > 0
    done = [e["response"] for e in raw if e.get("type") == "response.done"]
    assert [r["status"] for r in done[:3]] == ["completed", "completed", "cancelled"]
    assert done[0]["output"][0]["type"] == "function_call"
    spoken = [e["transcript"] for e in raw if e.get("type") == "response.output_audio_transcript.done"]
    assert spoken[0] == "It is sunny in Paris."
    assert "input_audio_buffer.speech_started" in kinds
    # the tool's result went back to the model as a tool message
    answered = fake_chat.requests_for("agent-llm")[1].body["messages"]
    assert answered[-1]["role"] == "tool" and "sunny in Paris" in answered[-1]["content"]
