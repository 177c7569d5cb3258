"""Audit entries: who changed what, the value before and after, and when; written with the change itself."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class AuditEntry:
    ts: float
    actor: str
    action: str  # e.g. "override.put", "profile.put", "mode.set", "flag.auto_selection"
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MemoryAuditLog:
    """Where audit entries go when the router runs without a store (bounded: the newest are kept)."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._entries: deque[AuditEntry] = deque(maxlen=maxlen)
        self._next_id = 1

    def append(self, entry: AuditEntry) -> AuditEntry:
        stored = AuditEntry(entry.ts, entry.actor, entry.action, entry.target, entry.before, entry.after, self._next_id)
        self._next_id += 1
        self._entries.append(stored)
        return stored

    def since(self, ts: float, limit: int) -> list[AuditEntry]:
        return [e for e in self._entries if e.ts >= ts][:limit]
