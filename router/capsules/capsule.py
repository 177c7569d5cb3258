"""Capsules: versioned definitions of inputs and the outputs expected of them, one kind of task each.

A capsule is JSON (a file under `fixtures/capsules/`, or posted to the API): `name`, `version`, `kind` (text,
code, transcription, synthesis), the `roles` whose models it measures, and `items`. Validated once, here, into
frozen objects; its `digest` (sha256 of the canonical definition) goes into every run, so a result can be
reproduced against exactly the capsule that produced it.

- text items carry a `task`: qa (facts that must appear; `expected` answers for exact match), summary and
  translation (`expected` references for ROUGE / BLEU / chrF), refusal (`refuse`: must the model decline?),
  tool_call (`tools` offered, `expected_tool` name and arguments). Any text item may list `forbidden` claims: a
  reply that makes one is a hallucination.
- code items: a `prompt`, and `tests` (Python asserting on the function the model writes) run in a sandbox.
- transcription items: a recording (`audio`, relative to the capsule file) and its transcript.
- synthesis items: a sentence to speak.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router.roles import Role

NAME = r"^[a-z0-9][a-z0-9_.-]{0,79}$"
DEFAULT_ROLES: dict[str, tuple[Role, ...]] = {
    "text": (Role.DIALOGUE,),
    "code": (Role.CODE,),
    "transcription": (Role.SPEECH_RECOGNITION,),
    "synthesis": (Role.SPEECH_SYNTHESIS,),
}


class CapsuleError(ValueError):
    """A capsule definition that does not validate (the API answers 422 with this message)."""


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")]


class ExpectedTool(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)  # each must appear with this value (others may too)


class TextItem(_Item):
    task: Literal["qa", "summary", "translation", "refusal", "tool_call"]
    prompt: Annotated[str, Field(min_length=1, max_length=20_000)]
    system: str | None = None
    expected: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()  # each must appear in the reply (case- and punctuation-insensitive)
    forbidden: tuple[str, ...] = ()  # a reply containing one hallucinated it
    refuse: bool = False
    tools: tuple[dict[str, Any], ...] = ()  # {"name", "description", "parameters"}
    expected_tool: ExpectedTool | None = None

    @model_validator(mode="after")
    def _check(self) -> TextItem:
        if self.task in ("summary", "translation") and not self.expected:
            raise ValueError(f"item {self.id!r}: a {self.task} item needs `expected` references")
        if self.task == "qa" and not (self.expected or self.facts):
            raise ValueError(f"item {self.id!r}: a qa item needs `expected` answers or `facts`")
        if self.task == "tool_call" and (self.expected_tool is None or not self.tools):
            raise ValueError(f"item {self.id!r}: a tool_call item needs `tools` and `expected_tool`")
        return self


class CodeItem(_Item):
    prompt: Annotated[str, Field(min_length=1, max_length=20_000)]
    tests: Annotated[str, Field(min_length=1, max_length=50_000)]
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0


class TranscriptionItem(_Item):
    audio: str
    transcript: str


class SynthesisItem(_Item):
    text: Annotated[str, Field(min_length=1, max_length=2000)]


_ITEMS: dict[str, type[_Item]] = {"text": TextItem, "code": CodeItem, "transcription": TranscriptionItem,
                                   "synthesis": SynthesisItem}


class CapsuleDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(pattern=NAME)]
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]
    kind: Literal["text", "code", "transcription", "synthesis"]
    roles: tuple[Role, ...] = ()
    description: str = ""
    source: str = ""
    items: tuple[dict[str, Any], ...]

    @field_validator("items")
    @classmethod
    def _some(cls, items: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        if not items:
            raise ValueError("a capsule needs at least one item")
        return items


class Capsule:
    """A validated capsule: its items typed by kind, audio paths resolved against where it was loaded from."""

    def __init__(self, definition: CapsuleDefinition, items: tuple[Any, ...], base: Path | None) -> None:
        self.definition = definition
        self.items = items
        self.base = base

    name = property(lambda self: self.definition.name)
    version = property(lambda self: self.definition.version)
    kind = property(lambda self: self.definition.kind)

    @property
    def roles(self) -> tuple[Role, ...]:
        return self.definition.roles or DEFAULT_ROLES[self.kind]

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.definition.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def audio_path(self, item: TranscriptionItem) -> Path:
        path = Path(item.audio)
        return path if path.is_absolute() or self.base is None else (self.base / path).resolve()

    def to_dict(self) -> dict[str, Any]:
        return self.definition.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any, base: Path | None = None) -> Capsule:
        try:
            definition = CapsuleDefinition.model_validate(data)
            item_type = _ITEMS[definition.kind]
            items = tuple(item_type.model_validate(i) for i in definition.items)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CapsuleError(f"invalid capsule: {where + ': ' if where else ''}{first['msg']}") from None
        ids = [i.id for i in items]
        if len(set(ids)) != len(ids):
            raise CapsuleError("invalid capsule: item ids must be unique")
        capsule = cls(definition, items, base)
        if definition.kind == "transcription" and base is not None:
            missing = [i.audio for i in items if not capsule.audio_path(i).exists()]
            if missing:
                raise CapsuleError(f"invalid capsule: recordings not found: {', '.join(missing[:3])}")
        return capsule

    @classmethod
    def load(cls, path: str | Path) -> Capsule:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CapsuleError(f"{path}: {exc}") from None
        return cls.from_dict(data, path.parent.resolve())


def shipped_dir() -> Path:
    """The capsules that ship in the repository (fixtures/capsules beside the package)."""
    return Path(__file__).resolve().parents[2] / "fixtures" / "capsules"


def load_dir(directory: Path) -> list[Capsule]:
    return [Capsule.load(p) for p in sorted(directory.glob("*.json"))] if directory.is_dir() else []
