"""Model profiles: per role, a primary model and ordered fallbacks."""

from __future__ import annotations

from dataclasses import dataclass, field

from router.roles import Role


@dataclass(frozen=True)
class ModelProfile:
    role: Role
    primary: str
    fallbacks: tuple[str, ...] = ()
    temperature: float | None = None
    max_tokens: int | None = None
    credentials_ref: str | None = None  # the name of a secret or env var, never the secret

    @property
    def candidates(self) -> tuple[str, ...]:
        return (self.primary, *self.fallbacks)


@dataclass
class ProfileSet:
    profiles: dict[Role, ModelProfile] = field(default_factory=dict)

    def get(self, role: Role) -> ModelProfile:
        try:
            return self.profiles[role]
        except KeyError:
            raise LookupError(f"no model profile for role {role.value!r}") from None
