"""After a model broke off mid-reply the caller resumes with the others (`stream_chat(exclude=...)`), and a last
resort that stood in for a model does not keep the conversation: the next call tries the models again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.errors import AdapterError
from adapters.llm.base import ChatChunk, ChatRequest
from router import AllCandidatesFailed, CallContext, Role, StreamInterrupted
from router.clock import ManualClock
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
