"""Sticky conversations: a conversation keeps the model selected for it (per role) unless failover moves it.

In memory as a bounded LRU; the store holds the same rows (written behind) so another process or a
restart continues a conversation on its model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.roles import Role


@dataclass(frozen=True)
class StickyChoice:
    conversation_id: str
    role: Role
    model: str
    config_version: int  # the configuration it was chosen under; a newer one re-decides
    reason: str  # selection source: auto, profile, override, failover, ...
    ts: float
    tenant: str | None = None
    persona: str | None = None

    def to_row(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "role": self.role.value,
            "model": self.model,
            "config_version": self.config_version,
            "reason": self.reason,
            "selected_at": self.ts,
            "tenant": self.tenant,
            "persona": self.persona,
        }

    @classmethod
    def from_row(cls, row: Any) -> StickyChoice:
        return cls(
            conversation_id=row.conversation_id,
            role=Role(row.role),
            model=row.model,
            config_version=int(row.config_version),
            reason=row.reason or "",
            ts=float(row.selected_at),
            tenant=row.tenant,
            persona=row.persona,
        )


class StickyMap:
    def __init__(self, max_conversations: int = 100_000, on_put: Callable[[StickyChoice], None] | None = None) -> None:
        self._max = max_conversations
        self.on_put = on_put  # persistence hook (write-behind)
        self._by_conv: OrderedDict[str, dict[Role, StickyChoice]] = OrderedDict()

    def known(self, conversation_id: str) -> bool:
        """Whether the conversation's choices (possibly none) are in memory: no store look-up needed."""
        return conversation_id in self._by_conv

    def get(self, conversation_id: str, role: Role) -> StickyChoice | None:
        choices = self._by_conv.get(conversation_id)
        if choices is None:
            return None
        self._by_conv.move_to_end(conversation_id)
        return choices.get(role)

    def put(self, choice: StickyChoice) -> None:
        choices = self._by_conv.get(choice.conversation_id)
        if choices is None:
            choices = self._by_conv[choice.conversation_id] = {}
            if len(self._by_conv) > self._max:
                self._by_conv.popitem(last=False)
        choices[choice.role] = choice
        if self.on_put is not None:
            self.on_put(choice)

    def load(self, conversation_id: str, choices: list[StickyChoice]) -> None:
        entry = self._by_conv.setdefault(conversation_id, {})
        for choice in choices:
            entry.setdefault(choice.role, choice)
        if len(self._by_conv) > self._max:
            self._by_conv.popitem(last=False)

    def forget(self, conversation_id: str) -> None:
        self._by_conv.pop(conversation_id, None)

    def __len__(self) -> int:
        return len(self._by_conv)
