"""adapters/llm/embedded.py: the offline responder answers honestly and streams like a model."""

from datetime import datetime, timezone

from adapters.llm.base import ChatMessage, ChatRequest
from adapters.llm.embedded import EmbeddedResponder


def _req(*texts):
    roles = ["user", "assistant"]
    return ChatRequest(tuple(ChatMessage(roles[i % 2], t) for i, t in enumerate(texts)))


def test_embedded_responder_is_honest_and_simple():
    def clock() -> datetime:
        return datetime(2026, 11, 21, 14, 5, tzinfo=timezone.utc)

    bot = EmbeddedResponder(clock=clock)
    assert bot.reply_to(_req("what time is it")) == "It's 14:05."
    assert bot.reply_to(_req("what's the date today")) == "Today is Saturday, November 21, 2026."
    first = bot.reply_to(_req("ten of clubs"))
    assert first.startswith("I heard: ten of clubs.") and "offline responder" in first
    assert bot.reply_to(_req("ten of clubs", first, "go forward")) == "I heard: go forward."
    assert bot.reply_to(_req("")) == "I didn't catch anything. Could you say that again?"
    assert "offline responder" in bot.reply_to(_req("who are you"))


async def test_embedded_responder_streams_words_and_usage():
    chunks = [c async for c in EmbeddedResponder().stream(_req("go forward"))]
    text = "".join(c.text for c in chunks)
    assert text.startswith("I heard: go forward.")
    assert len([c for c in chunks if c.text]) > 3
    assert chunks[-1].usage is not None and chunks[-1].finish_reason == "stop"


def test_it_speaks_a_tool_result_the_client_added():
    from adapters.llm.base import ToolCall, ToolSpec, without_tools

    request = ChatRequest((ChatMessage("user", "weather in Oslo?"),
                           ChatMessage("assistant", "", tool_calls=(ToolCall("c1", "get_weather", "{}"),)),
                           ChatMessage("tool", "sunny, 4 degrees", tool_call_id="c1")),
                          tools=(ToolSpec("get_weather"),))
    bot = EmbeddedResponder()
    assert bot.reply_to(without_tools(request)) == "get_weather says: sunny, 4 degrees"
    empty = without_tools(ChatRequest(request.messages[:2] + (ChatMessage("tool", " ", tool_call_id="c1"),)))
    assert bot.reply_to(empty) == "get_weather returned nothing."
