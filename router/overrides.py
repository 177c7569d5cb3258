"""Tenant and persona overrides of a role's model. Precedence: the tenant's own persona, then a persona of every
tenant, then the tenant, then the mode default.

A persona is named by the session that uses it (`somagent.persona`), and two tenants may both name one "support":
a `tenant_persona` override (subject `<tenant>/<persona>`) is that tenant's persona alone; a `persona` override
applies to the persona in every tenant (an operator's platform-wide choice)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from router.context import CallContext
from router.roles import Role


class Scope(StrEnum):
    TENANT = "tenant"
    PERSONA = "persona"
    TENANT_PERSONA = "tenant_persona"


def tenant_persona(tenant: str, persona: str) -> str:
    """The subject of one tenant's persona override."""
    return f"{tenant}/{persona}"


def check_subject(scope: Scope, subject: str) -> None:
    """ValueError unless the subject fits its scope (a tenant persona is `<tenant>/<persona>`, both named)."""
    if not subject or len(subject) > 200:
        raise ValueError("subject (1-200 characters) is required")
    if scope is Scope.TENANT_PERSONA:
        tenant, _, persona = subject.partition("/")
        if not tenant or not persona:
            raise ValueError("a tenant_persona subject is '<tenant>/<persona>'")
    elif scope is Scope.TENANT and "/" in subject:
        raise ValueError("a tenant id has no '/'")


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
        """The override that applies to a call: the tenant's persona's, the persona's, the tenant's, or none."""
        if ctx.persona is not None:
            if ctx.tenant is not None:
                ov = self._by_key.get((Scope.TENANT_PERSONA, tenant_persona(ctx.tenant, ctx.persona), role))
                if ov is not None:
                    return ov
            ov = self._by_key.get((Scope.PERSONA, ctx.persona, role))
            if ov is not None:
                return ov
        if ctx.tenant is not None:
            return self._by_key.get((Scope.TENANT, ctx.tenant, role))
        return None

    def all(self) -> list[Override]:
        return sorted(self._by_key.values(), key=lambda o: (o.scope.value, o.subject, o.role.value))
