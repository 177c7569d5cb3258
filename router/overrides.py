"""Tenant and persona overrides of a role's model. Precedence: persona over tenant over the mode default."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from router.context import CallContext
from router.roles import Role


class Scope(StrEnum):
    TENANT = "tenant"
    PERSONA = "persona"


@dataclass(frozen=True)
class Override:
    scope: Scope
    subject: str  # the tenant id or persona name
    role: Role
    model: str
    locked: bool = False  # auto-selection never moves a locked choice; only failover may
    reason: str = ""
    updated_by: str = ""
    updated_at: float = 0.0

    @property
    def key(self) -> tuple[Scope, str, Role]:
        return (self.scope, self.subject, self.role)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scope"], data["role"] = self.scope.value, self.role.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Override:
        return cls(
            scope=Scope(data["scope"]),
            subject=data["subject"],
            role=Role(data["role"]),
            model=data["model"],
            locked=bool(data.get("locked")),
            reason=data.get("reason") or "",
            updated_by=data.get("updated_by") or "",
            updated_at=float(data.get("updated_at") or 0.0),
        )


class OverrideTable:
    def __init__(self, overrides: list[Override] | None = None) -> None:
        self._by_key: dict[tuple[Scope, str, Role], Override] = {}
        for ov in overrides or []:
            self.put(ov)

    def put(self, override: Override) -> Override | None:
        before = self._by_key.get(override.key)
        self._by_key[override.key] = override
        return before

    def remove(self, scope: Scope, subject: str, role: Role) -> Override | None:
        return self._by_key.pop((scope, subject, role), None)

    def get(self, scope: Scope, subject: str, role: Role) -> Override | None:
        return self._by_key.get((scope, subject, role))

    def resolve(self, role: Role, ctx: CallContext) -> Override | None:
        """The override that applies to a call: the persona's, else the tenant's, else none."""
        if ctx.persona is not None:
            ov = self._by_key.get((Scope.PERSONA, ctx.persona, role))
            if ov is not None:
                return ov
        if ctx.tenant is not None:
            return self._by_key.get((Scope.TENANT, ctx.tenant, role))
        return None

    def all(self) -> list[Override]:
        return sorted(self._by_key.values(), key=lambda o: (o.scope.value, o.subject, o.role.value))
