"""Model profiles: per role, a primary model, ordered fallbacks, generation settings and voice deadlines."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from router.roles import Role


@dataclass(frozen=True)
class ModelProfile:
    role: Role
    primary: str
    fallbacks: tuple[str, ...] = ()
    temperature: float | None = None
    max_tokens: int | None = None
    credentials_ref: str | None = None  # the name of a secret or env var, never the secret
    first_output_deadline_s: float | None = None  # None: the mode's default for the role
    stall_timeout_s: float | None = None  # None: the mode's default for the role

    @cached_property
    def candidates(self) -> tuple[str, ...]:
        """Primary then fallbacks, without repeats (computed once: profiles are immutable)."""
        seen: list[str] = []
        for name in (self.primary, *self.fallbacks):
            if name not in seen:
                seen.append(name)
        return tuple(seen)

    def with_primary(self, model: str) -> ModelProfile:
        return replace(self, primary=model, fallbacks=tuple(m for m in self.candidates if m != model))

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "primary": self.primary,
            "fallbacks": list(self.fallbacks),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "credentials_ref": self.credentials_ref,
            "first_output_deadline_s": self.first_output_deadline_s,
            "stall_timeout_s": self.stall_timeout_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelProfile:
        return cls(
            role=Role(data["role"]),
            primary=data["primary"],
            fallbacks=tuple(data.get("fallbacks") or ()),
            temperature=data.get("temperature"),
            max_tokens=data.get("max_tokens"),
            credentials_ref=data.get("credentials_ref"),
            first_output_deadline_s=data.get("first_output_deadline_s"),
            stall_timeout_s=data.get("stall_timeout_s"),
        )


@dataclass
class ProfileSet:
    profiles: dict[Role, ModelProfile] = field(default_factory=dict)

    def get(self, role: Role) -> ModelProfile:
        try:
            return self.profiles[role]
        except KeyError:
            raise LookupError(f"no model profile for role {role.value!r}") from None

    def roles(self) -> list[Role]:
        return list(self.profiles)
