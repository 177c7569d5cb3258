"""After a model broke off mid-reply the caller resumes with the others (`stream_chat(exclude=...)`), and a last
resort that stood in for a model does not keep the conversation: the next call tries the models again. With tools:
the role that answers, and what a model that calls no tools is given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from adapters.errors import AdapterError
from adapters.llm.base import ChatChunk, ChatMessage, ChatRequest, ToolCall, ToolCallDelta, ToolSpec
from router import AllCandidatesFailed, CallContext, Role, StreamInterrupted
from router.catalog import ModelEntry
from router.clock import ManualClock
from router.profiles import ModelProfile
from tests.router.router_testkit import REQUEST, ScriptedChat, chat_entry, collect, make_router

CTX = CallContext(tenant="t", persona="p", conversation_id="conv-r", session_id="s")


class BreaksOff(ScriptedChat):
    """Says a few words, then its connection breaks (a local model's process killed mid-reply)."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.calls += 1
        yield ChatChunk(text="Once upon ")
        raise AdapterError(f"{self.name}: stream broke: connection reset")


async def test_the_others_answer_after_a_model_broke_off_mid_reply(clock: ManualClock) -> None:
    router = make_router([chat_entry("local", BreaksOff("local")), chat_entry("remote", ScriptedChat("remote", "hi")),
                          chat_entry("offline", ScriptedChat("offline", "stand-in"), last_resort=True)],
                         ("local", "remote", "offline"), clock=clock)
    with pytest.raises(StreamInterrupted) as info:
        await collect(router, CTX)
    assert info.value.model == "local"
    assert await collect_excluding(router, {"local"}) == "hi "
    assert await collect_excluding(router, {"local", "remote"}) == "stand-in "
    with pytest.raises(AllCandidatesFailed):  # nobody left: the caller's apology
        await collect_excluding(router, {"local", "remote", "offline"})
    await router.aclose()


async def collect_excluding(router, exclude) -> str:
    return "".join([c.text async for c in router.stream_chat(Role.DIALOGUE, REQUEST, CTX, exclude=exclude)])


async def test_a_last_resort_standing_in_does_not_keep_the_conversation(clock: ManualClock) -> None:
    flaky = ScriptedChat("local", "from the local model", error="error")
    router = make_router([chat_entry("local", flaky),
                          chat_entry("offline", ScriptedChat("offline", "stand-in"), last_resort=True)],
                         ("local", "offline"), clock=clock)
    assert await collect(router, CTX) == "stand-in "
    assert router.sticky.get("conv-r", Role.DIALOGUE).model == "local"  # still the profile's choice
    flaky.error = None  # it is back (a restarted process)
    assert await collect(router, CTX) == "from the local model "
    await router.aclose()


class Recording(ScriptedChat):
    """Answers like ScriptedChat and keeps the request it was given."""

    def __init__(self, name: str, text: str = "hi there", calls: tuple[ToolCallDelta, ...] = ()) -> None:
        super().__init__(name, text)
        self.requests: list[ChatRequest] = []
        self.tool_deltas = calls

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.requests.append(request)
        if self.tool_deltas:
            for delta in self.tool_deltas:
                yield ChatChunk(tool_calls=(delta,))
            yield ChatChunk(finish_reason="tool_calls")
            return
        async for chunk in super().stream(request):
            yield chunk


WITH_TOOLS = ChatRequest(
    messages=(ChatMessage("user", "weather in Oslo?"),
              ChatMessage("assistant", "", tool_calls=(ToolCall("c1", "get_weather", '{"city":"Oslo"}'),)),
              ChatMessage("tool", "sunny", tool_call_id="c1")),
    tools=(ToolSpec("get_weather"),))


def _tools_entry(name: str, adapter: ScriptedChat, *, tools: bool) -> ModelEntry:
    return replace(chat_entry(name, adapter, roles=[Role.TOOL_PLANNING]), tools=tools)


async def test_tools_go_to_tool_planning_where_its_profile_names_a_model_that_calls_them(clock: ManualClock) -> None:
    caller, plain = Recording("caller"), Recording("plain")
    entries = [_tools_entry("caller", caller, tools=True), _tools_entry("plain", plain, tools=False)]
    planning = {Role.TOOL_PLANNING: ModelProfile(Role.TOOL_PLANNING, "caller", ("plain",))}
    router = make_router(entries, ("plain",), clock=clock, extra=planning)
    assert router.tool_role(CTX) is Role.TOOL_PLANNING
    assert make_router(entries, ("plain",), clock=clock).tool_role(CTX) is Role.DIALOGUE  # no such profile
    only_plain = {Role.TOOL_PLANNING: ModelProfile(Role.TOOL_PLANNING, "plain")}
    assert make_router(entries, ("plain",), clock=clock, extra=only_plain).tool_role(CTX) is Role.DIALOGUE
    await router.aclose()


async def test_a_model_that_calls_no_tools_gets_the_calls_and_results_as_text(clock: ManualClock) -> None:
    caller, plain = Recording("caller"), Recording("plain")
    router = make_router([_tools_entry("caller", caller, tools=True), _tools_entry("plain", plain, tools=False)],
                         ("caller",), clock=clock)
    assert await collect(router, CTX, WITH_TOOLS) == "hi there "
    assert caller.requests == [WITH_TOOLS]  # the tool-calling model gets the request as it is
    router2 = make_router([_tools_entry("plain", plain, tools=False)], ("plain",), clock=clock)
    await collect(router2, CTX, WITH_TOOLS)
    (seen,) = plain.requests
    assert seen.tools == ()
    assert [(m.role, m.content) for m in seen.messages] == [
        ("user", "weather in Oslo?"), ("assistant", '(called get_weather({"city":"Oslo"}))'),
        ("user", "Result of get_weather: sunny")]
    assert not any(m.tool_calls for m in seen.messages)
    await router.aclose()
    await router2.aclose()


async def test_a_reply_of_tool_calls_alone_is_output_and_needs_no_failover(clock: ManualClock) -> None:
    deltas = (ToolCallDelta(0, "c1", "get_weather", ""), ToolCallDelta(0, arguments='{"city":'),
              ToolCallDelta(0, arguments='"Oslo"}'))
    caller, backup = Recording("caller", calls=deltas), Recording("backup")
    router = make_router([_tools_entry("caller", caller, tools=True), _tools_entry("backup", backup, tools=True)],
                         ("caller", "backup"), clock=clock)
    chunks = [c async for c in router.stream_chat(Role.DIALOGUE, WITH_TOOLS, CTX)]
    assert [d for c in chunks for d in c.tool_calls] == list(deltas)
    assert backup.requests == []
    await router.aclose()
