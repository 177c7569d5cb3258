"""voice/conversation.py: the items as the model's context, function calls and their outputs included."""

from __future__ import annotations

from adapters.llm.base import ChatMessage, ToolCall
from voice.conversation import MAX_CONTEXT_ITEMS, ContextWindow, Conversation, Item
from voice.session_config import RetentionRatio, TokenLimits


def _call(call_id: str, name: str = "get_weather", status: str = "completed") -> Item:
    return Item(id=f"item_{call_id}", role="assistant", kind="function_call", call_id=call_id, name=name,
                arguments='{"city": "Oslo"}', status=status)


def _output(call_id: str, output: str) -> Item:
    return Item(id=f"out_{call_id}", role="user", kind="function_call_output", call_id=call_id, output=output)


def test_calls_become_one_assistant_message_each_followed_by_its_output():
    conv = Conversation()
    for item in (Item(id="u1", role="user", kind="input_text", text="weather?"), _call("a"), _call("b"),
                 _output("b", "rain"), _output("a", "sun"), Item(id="u2", role="user", kind="input_text", text="ok")):
        conv.add(item)
    assert conv.messages("Be brief.") == (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "weather?"),
        ChatMessage("assistant", "", tool_calls=(ToolCall("a", "get_weather", '{"city": "Oslo"}'),
                                                 ToolCall("b", "get_weather", '{"city": "Oslo"}'))),
        ChatMessage("tool", "sun", tool_call_id="a"),
        ChatMessage("tool", "rain", tool_call_id="b"),
        ChatMessage("user", "ok"),
    )


def test_an_unanswered_call_an_orphan_output_and_a_broken_call_are_left_out():
    conv = Conversation()
    for item in (_call("waiting"), _output("nobody", "lost"), _call("cut", status="incomplete"), _output("cut", "x"),
                 Item(id="u", role="user", kind="input_text", text="hello")):
        conv.add(item)
    assert conv.messages("") == (ChatMessage("user", "hello"),)


def test_function_items_on_the_wire():
    assert _call("a").wire() == {"id": "item_a", "object": "realtime.item", "type": "function_call",
                                 "status": "completed", "call_id": "a", "name": "get_weather",
                                 "arguments": '{"city": "Oslo"}'}
    assert _output("a", "sun").wire() == {"id": "out_a", "object": "realtime.item", "type": "function_call_output",
                                          "status": "completed", "call_id": "a", "output": "sun"}


def test_root_inserts_at_the_start_and_a_named_item_after_it():
    conv = Conversation()
    for item_id in ("a", "b"):
        conv.add(Item(id=item_id, role="user", kind="input_text", text=item_id))
    assert conv.add(Item(id="first", role="system", kind="input_text", text="first"), "root") is None
    assert conv.add(Item(id="mid", role="user", kind="input_text", text="mid"), "a") == "a"
    assert [m.content for m in conv.messages("")] == ["first", "a", "mid", "b"]


def _texts(n: int, chars: int = 10) -> list[Item]:
    return [Item(id=f"u{i}", role="user", kind="input_text", text=f"{i:0{chars}d}") for i in range(n)]


def test_the_context_window_follows_the_sessions_truncation():
    items = _texts(100)
    auto = ContextWindow.of("auto")
    assert [it.id for it in auto.select(items)] == [f"u{i}" for i in range(100 - MAX_CONTEXT_ITEMS, 100)]
    assert auto.select(items[:5]) == items[:5]  # under the limit: everything
    assert ContextWindow.of("disabled").select(items) == items
    half = ContextWindow.of(RetentionRatio(type="retention_ratio", retention_ratio=0.5))
    assert half.select(items[:MAX_CONTEXT_ITEMS]) == items[:MAX_CONTEXT_ITEMS]  # at the limit: no cut yet
    assert len(half.select(items[:MAX_CONTEXT_ITEMS + 1])) == MAX_CONTEXT_ITEMS // 2  # over: cut to half
    # a token limit: ~4 characters a token, 100 tokens = 400 characters = 40 items of 10, cut to 30 % of it
    tokens = ContextWindow.of(RetentionRatio(type="retention_ratio", retention_ratio=0.3,
                                             token_limits=TokenLimits(post_instructions=100)))
    assert tokens.select(items[:40]) == items[:40]
    assert [it.id for it in tokens.select(items[:41])] == [f"u{i}" for i in range(29, 41)]
    # the newest item stays, however large
    assert tokens.select([Item(id="big", role="user", kind="input_text", text="x" * 10_000)])[0].id == "big"


def test_a_conversation_gives_the_model_what_its_window_keeps():
    conv = Conversation()
    for item in _texts(50):
        conv.add(item)
    assert len(conv.messages("sys")) == 1 + MAX_CONTEXT_ITEMS
    assert len(conv.messages("sys", ContextWindow.of("disabled"))) == 1 + 50
