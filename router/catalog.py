"""The models the router may call, each with the adapter that serves it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.roles import Role


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: Role
    provider: str
    factory: Callable[[], Any]  # builds the adapter (ChatModel, SpeechRecognizer or SpeechSynthesizer)


class Catalog:
    """Model entries and the adapter instances built from them (one shared instance per model)."""

    def __init__(self, entries: list[ModelEntry] | None = None) -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._instances: dict[str, Any] = {}
        for entry in entries or []:
            self.add(entry)

    def add(self, entry: ModelEntry) -> None:
        self._entries[entry.name] = entry

    def entry(self, name: str) -> ModelEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise LookupError(f"unknown model {name!r}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def adapter(self, name: str) -> Any:
        if name not in self._instances:
            self._instances[name] = self.entry(name).factory()
        return self._instances[name]

    def built(self) -> list[Any]:
        return list(self._instances.values())
