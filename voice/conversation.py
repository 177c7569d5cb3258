"""The conversation's items: what the model sees as context, in protocol order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from adapters.llm.base import ChatMessage, ToolCall

MAX_CONTEXT_ITEMS = 40
CHARS_PER_TOKEN = 4  # a token limit in characters, roughly, for English text
ROOT = "root"  # a `previous_item_id` that means the start of the conversation


@dataclass(frozen=True)
class ContextWindow:
    """Which of the conversation's items the model sees (the session's `truncation`): the newest ones up to a
    limit in items and characters; once over it, they are cut to `retain` of the limit, so that a cut happens
    now and then instead of on every turn (OpenAI's `retention_ratio`). No limit: every item ("disabled")."""

    max_items: int | None = MAX_CONTEXT_ITEMS
    max_chars: int | None = None
    retain: float = 1.0

    @classmethod
    def of(cls, truncation: Any) -> ContextWindow:
        """"auto" | "disabled" | a retention ratio (`type`, `retention_ratio`, `token_limits.post_instructions`)."""
        if truncation == "disabled":
            return cls(max_items=None)
        ratio = getattr(truncation, "retention_ratio", None)
        if ratio is None:
            return cls()
        tokens = getattr(getattr(truncation, "token_limits", None), "post_instructions", None)
        if tokens:
            return cls(max_items=None, max_chars=tokens * CHARS_PER_TOKEN, retain=ratio)
        return cls(retain=ratio)

    def select(self, items: list[Item]) -> list[Item]:
        chars = sum(it.chars for it in items)
        over_items = self.max_items is not None and len(items) > self.max_items
        over_chars = self.max_chars is not None and chars > self.max_chars
        if not (over_items or over_chars):
            return items
        keep_items = max(1, int(self.max_items * self.retain)) if self.max_items is not None else len(items)
        keep_chars = self.max_chars * self.retain if self.max_chars is not None else float("inf")
        kept, total = 0, 0
        for item in reversed(items):  # the newest first; the newest item always stays
            if kept and (kept + 1 > keep_items or total + item.chars > keep_chars):
                break
            kept, total = kept + 1, total + item.chars
        return items[len(items) - kept:]


@dataclass
class Item:
    """A message (its one content part's `kind` and text), or a function call or a call's output (kind
    `function_call` / `function_call_output`, with `call_id`, `name`, `arguments`, `output`)."""

    id: str
    role: Literal["user", "assistant", "system"]
    kind: Literal["input_audio", "input_text", "output_audio", "output_text", "function_call", "function_call_output"]
    text: str | None = None  # transcript or text; None while a transcription is pending
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    audio_ms: float = 0.0  # assistant audio left after a truncation: what the model remembers having said
    generated_ms: float = 0.0  # assistant audio generated, the bound of a client's truncate
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    output: str = ""

    @property
    def chars(self) -> int:
        return len(self.text or "") + len(self.arguments) + len(self.output)

    @property
    def is_message(self) -> bool:
        return self.kind not in ("function_call", "function_call_output")

    def wire(self) -> dict[str, Any]:
        if self.kind == "function_call":
            return {"id": self.id, "object": "realtime.item", "type": "function_call", "status": self.status,
                    "call_id": self.call_id, "name": self.name, "arguments": self.arguments}
        if self.kind == "function_call_output":
            return {"id": self.id, "object": "realtime.item", "type": "function_call_output", "status": self.status,
                    "call_id": self.call_id, "output": self.output}
        part: dict[str, Any] = {"type": self.kind}
        if self.kind in ("input_audio", "output_audio"):
            part["transcript"] = self.text
        else:
            part["text"] = self.text or ""
        return {"id": self.id, "object": "realtime.item", "type": "message", "role": self.role,
                "status": self.status, "content": [part] if (self.text is not None or self.role == "user") else []}


class Conversation:
    """The items in order, bounded in number and in text: the oldest go first, each told to `on_evict`."""

    def __init__(self, max_items: int = 1000, max_chars: int = 2_000_000,
                 on_evict: Callable[[Item], None] | None = None) -> None:
        self._items: list[Item] = []
        self.max_items = max_items
        self.max_chars = max_chars
        self.on_evict = on_evict

    def add(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Insert after `previous_item_id` (at the start for "root", at the end for None); return the id of the
        item before it."""
        if previous_item_id == ROOT:
            self._items.insert(0, item)
            prev = None
        elif previous_item_id is not None:
            idx = next((i for i, it in enumerate(self._items) if it.id == previous_item_id), None)
            if idx is None:
                raise KeyError(previous_item_id)
            self._items.insert(idx + 1, item)
            prev = previous_item_id
        else:
            prev = self._items[-1].id if self._items else None
            self._items.append(item)
        self._bound(keep=item)
        return prev

    def _bound(self, keep: Item) -> None:
        """Drop the oldest items (never the one just added) while over either bound."""
        chars = sum(it.chars for it in self._items)
        while len(self._items) > 1 and (len(self._items) > self.max_items or chars > self.max_chars):
            oldest = self._items[0] if self._items[0] is not keep else self._items[1]
            self._items.remove(oldest)
            chars -= oldest.chars
            if self.on_evict is not None:
                self.on_evict(oldest)

    def clear(self) -> None:
        """Forget every item (a closed session lets go of its text at once, not when the collector runs)."""
        self._items.clear()

    def get(self, item_id: str) -> Item | None:
        return next((it for it in self._items if it.id == item_id), None)

    def delete(self, item_id: str) -> bool:
        item = self.get(item_id)
        if item is None:
            return False
        self._items.remove(item)
        return True

    def last_id(self) -> str | None:
        return self._items[-1].id if self._items else None

    def messages(self, instructions: str, window: ContextWindow | None = None,
                 then: Sequence[Item] = ()) -> tuple[ChatMessage, ...]:
        """The chat context: instructions, then the items the window keeps, as messages; `then`: as if these
        items came after the conversation's (they are not added)."""
        return context_messages(instructions, (window or ContextWindow()).select([*self._items, *then]))


def context_messages(instructions: str, items: list[Item]) -> tuple[ChatMessage, ...]:
    """Items as chat messages: consecutive function calls become one assistant message's tool calls, each
    followed by its output. A call with no output yet, or an output whose call is not in the context, is left
    out (chat-completions servers refuse a call left unanswered and an answer to no call)."""
    outputs = {it.call_id: it for it in items if it.kind == "function_call_output"}
    msgs = [ChatMessage("system", instructions)] if instructions else []
    calls: list[Item] = []

    def flush() -> None:
        if calls:
            msgs.append(ChatMessage("assistant", "", tool_calls=tuple(
                ToolCall(c.call_id, c.name, c.arguments) for c in calls)))
            msgs.extend(ChatMessage("tool", outputs[c.call_id].output, tool_call_id=c.call_id) for c in calls)
            calls.clear()

    for item in items:
        if item.kind == "function_call":
            if item.call_id in outputs and item.status == "completed":
                calls.append(item)
            continue
        if item.kind == "function_call_output":
            continue  # placed after its call
        flush()
        if item.text:
            msgs.append(ChatMessage(item.role, item.text))
    flush()
    return tuple(msgs)
