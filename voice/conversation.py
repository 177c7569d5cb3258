"""The conversation's items: what the model sees as context, in protocol order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from adapters.llm.base import ChatMessage

MAX_CONTEXT_ITEMS = 40


@dataclass
class Item:
    id: str
    role: Literal["user", "assistant", "system"]
    kind: Literal["input_audio", "input_text", "output_audio", "output_text"]
    text: str | None = None  # transcript or text; None while a transcription is pending
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    audio_ms: float = 0.0  # assistant audio produced, for truncation

    def wire(self) -> dict[str, Any]:
        part: dict[str, Any] = {"type": self.kind}
        if self.kind in ("input_audio", "output_audio"):
            part["transcript"] = self.text
        else:
            part["text"] = self.text or ""
        return {"id": self.id, "object": "realtime.item", "type": "message", "role": self.role,
                "status": self.status, "content": [part] if (self.text is not None or self.role == "user") else []}


class Conversation:
    def __init__(self, max_items: int = 1000) -> None:
        self._items: list[Item] = []
        self.max_items = max_items

    def add(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Insert after `previous_item_id` (or at the end); return the id of the item before it."""
        if previous_item_id is not None:
            idx = next((i for i, it in enumerate(self._items) if it.id == previous_item_id), None)
            if idx is None:
                raise KeyError(previous_item_id)
            self._items.insert(idx + 1, item)
            prev = previous_item_id
        else:
            prev = self._items[-1].id if self._items else None
            self._items.append(item)
        if len(self._items) > self.max_items:  # bounded: the oldest context goes first
            del self._items[0]
        return prev

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

    def messages(self, instructions: str) -> tuple[ChatMessage, ...]:
        msgs = [ChatMessage("system", instructions)] if instructions else []
        for item in self._items[-MAX_CONTEXT_ITEMS:]:
            if item.text:
                msgs.append(ChatMessage(item.role, item.text))
        return tuple(msgs)
