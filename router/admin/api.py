"""The router's admin HTTP API, mounted by the voice app: `app.include_router(build_admin_router(router))`.

Every route needs an admin key (`Authorization: Bearer <key>` or `X-Admin-Key`), in every mode;
`X-Actor` may name the person behind the key for the audit trail. Invalid input is answered 4xx with
a reason and changes nothing: the bodies below validate shape and range once, here at the edge; routes
raise `AdminError` and one handler (`AdminRoute`) writes the error JSON.
"""

import asyncio
import hashlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from router.admin.auth import ADMIN_AUDIT, ADMIN_MODELS, AdminKeys
from router.admin.operations import AdminError, RouterAdmin
from router.breaker import BreakerBoard
from router.catalog import Catalog
from router.clock import Clock
from router.context import CallContext
from router.modes import DeploymentMode
from router.overrides import Scope
from router.roles import Role
from router.scoring import RoleScores
from router.selection import Selection
from router.state import RoutingState
from router.store import RouterStore
from router.telemetry import WINDOWS, Outcome, Rollup

Window = Literal["5m", "1h", "24h"]


class ProfileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primary: str = Field(min_length=1, max_length=200)
    fallbacks: list[str] = Field(default_factory=list, max_length=20)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    credentials_ref: str | None = Field(default=None, max_length=200)
    first_output_deadline_s: float | None = Field(default=None, ge=0.05, le=600)
    stall_timeout_s: float | None = Field(default=None, ge=0.05, le=600)


class ProfilesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profiles: dict[Role, ProfileBody] = Field(min_length=1)


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Scope
    subject: str = Field(min_length=1, max_length=200)
    role: Role
    model: str = Field(min_length=1, max_length=200)
    locked: bool = False
    reason: str = Field(default="", max_length=2000)


class ModeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: DeploymentMode


class FlagBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class PersonaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_p95_ms: float | None = Field(default=None, gt=0)
    min_success_rate: float | None = Field(default=None, ge=0, le=1)
    safety: list[str] = Field(default_factory=list, max_length=50)
    min_quality: float | None = Field(default=None, ge=0, le=1)


class TelemetryRecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    model: str = Field(min_length=1, max_length=200)
    outcome: Outcome = Outcome.OK
    ts: float | None = Field(default=None, ge=0)
    latency_ms: float = Field(ge=0)
    ttft_ms: float | None = Field(default=None, ge=0)
    units_in: float = Field(default=0.0, ge=0)
    units_out: float = Field(default=0.0, ge=0)
    cost: float | None = Field(default=None, ge=0)
    tenant: str | None = Field(default=None, max_length=200)
    persona: str | None = Field(default=None, max_length=200)
    conversation_id: str | None = Field(default=None, max_length=200)
    error: str = Field(default="", max_length=2000)


class TelemetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[TelemetryRecordIn] = Field(min_length=1, max_length=10_000)


class ScoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None


class AdminService(Protocol):
    """What the admin API reads and drives (the router's handle satisfies it); the API never imports it."""

    state: RoutingState
    catalog: Catalog
    breakers: BreakerBoard
    admin: RouterAdmin
    admin_keys: AdminKeys
    clock: Clock

    @property
    def store(self) -> RouterStore | None: ...

    @property
    def started(self) -> bool: ...

    def rollups(self, role: Role, window: str) -> list[Rollup]: ...

    def rescore(self, role: Role | None = None) -> list[RoleScores]: ...

    def explain(self, role: Role, ctx: CallContext) -> Selection: ...


class AdminRoute(APIRoute):
    """Routes raise AdminError; this one handler writes its JSON (`{"detail": ...}`, like HTTPException)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except AdminError as exc:
                return JSONResponse({"detail": exc.message}, status_code=exc.status)

        return handle


def parse_since(since: str | None) -> float:
    if since is None or since == "":
        return 0.0
    try:
        return float(since)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise AdminError(422, "since: an ISO-8601 time or epoch seconds") from None
    return parsed.timestamp()


def admin_actor(service: AdminService) -> Callable[[Request], Coroutine[Any, Any, str]]:
    """The dependency every admin route takes: the admin key checked (the audit capability for /v1/audit, the
    models capability elsewhere), the actor named for the audit trail, and every read audited."""

    async def check(request: Request) -> str:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-admin-key")
        if not key:
            raise HTTPException(
                401,
                "admin key required: send 'Authorization: Bearer <key>' or 'X-Admin-Key'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not service.admin_keys.configured:
            raise AdminError(403, "no admin key is configured on this server; set SOMAGENT_ADMIN_KEY")
        needed = ADMIN_AUDIT if request.url.path.startswith("/v1/audit") else ADMIN_MODELS
        name = service.admin_keys.authorise(key, needed)
        if name is None:
            raise AdminError(403, f"invalid admin key (an API key needs the {needed!r} capability)")
        person = request.headers.get("x-actor", "").strip()[:100]
        actor = f"{name}:{person}" if person else name
        if request.method == "GET":  # reads are audited too: who looked at what (the query hashed, not kept)
            query = hashlib.sha256(str(request.url.query).encode()).hexdigest()
            await service.admin.record(actor, "admin.read", request.url.path, {"query_sha256": query})
        return actor

    return check


def build_admin_router(service: AdminService) -> APIRouter:
    """The admin routes over the router's handle (`ModelRouter`, composed by router.compose)."""

    Actor = Annotated[str, Depends(admin_actor(service))]
    api = APIRouter(tags=["router-admin"], route_class=AdminRoute)

    def profile_view(role: Role, mode: DeploymentMode) -> dict[str, Any]:
        state = service.state
        profile = state.profile(role, mode)
        timeouts = state.policies[mode].timeouts_for(role, profile)
        stored = state.custom_profiles.get(mode, {}).get(role) is not None
        models = []
        for name in profile.candidates:
            entry = service.catalog.get(name)
            models.append(entry.describe() if entry is not None else {"name": name, "missing": True})
        return {
            **profile.to_dict(),
            "mode": mode.value,
            "source": "stored" if stored else "mode_default",
            "deadlines": {
                "first_output_s": timeouts.first_output_s,
                "stall_s": timeouts.stall_s,
                "slow_s": timeouts.slow_s,
            },
            "models": models,
        }

    def mode_of(mode: DeploymentMode | None) -> DeploymentMode:
        return mode or service.state.mode

    # -- profiles -------------------------------------------------------------------------------
    @api.get("/v1/router/profiles")
    async def list_profiles(_: Actor, mode: DeploymentMode | None = None) -> dict[str, Any]:
        m = mode_of(mode)
        roles = service.state.policies[m].profiles.roles()
        return {"mode": m.value, "profiles": {r.value: profile_view(r, m) for r in roles}}

    @api.put("/v1/router/profiles")
    async def put_profiles(body: ProfilesBody, actor: Actor, mode: DeploymentMode | None = None) -> dict[str, Any]:
        """Several roles at once, all or nothing."""
        await service.admin.put_profiles({r.value: p.model_dump() for r, p in body.profiles.items()}, actor, mode)
        m = mode_of(mode)
        return {"mode": m.value, "profiles": {r.value: profile_view(r, m) for r in body.profiles}}

    @api.get("/v1/router/profiles/{role}")
    async def get_profile(role: Role, _: Actor, mode: DeploymentMode | None = None) -> dict[str, Any]:
        m = mode_of(mode)
        if role not in service.state.policies[m].profiles.profiles:
            raise AdminError(404, f"mode {m.value!r} has no profile for role {role.value!r}")
        return profile_view(role, m)

    @api.put("/v1/router/profiles/{role}")
    async def put_profile(
        role: Role, body: ProfileBody, actor: Actor, mode: DeploymentMode | None = None
    ) -> dict[str, Any]:
        await service.admin.put_profile(role, body.model_dump(), actor, mode)
        return profile_view(role, mode_of(mode))

    @api.delete("/v1/router/profiles/{role}")
    async def reset_profile(role: Role, actor: Actor, mode: DeploymentMode | None = None) -> dict[str, Any]:
        await service.admin.reset_profile(role, actor, mode)
        return profile_view(role, mode_of(mode))

    # -- overrides ------------------------------------------------------------------------------
    @api.get("/v1/router/overrides")
    async def list_overrides(
        _: Actor, scope: Scope | None = None, subject: str | None = None, role: Role | None = None
    ) -> dict[str, Any]:
        items = [
            o
            for o in service.state.overrides.all()
            if (scope is None or o.scope is scope)
            and (subject is None or o.subject == subject)
            and (role is None or o.role is role)
        ]
        return {"overrides": [o.to_dict() for o in items]}

    @api.put("/v1/router/overrides")
    async def put_override(body: OverrideBody, actor: Actor) -> dict[str, Any]:
        ov = await service.admin.put_override(
            body.scope.value, body.subject, body.role, body.model, actor, locked=body.locked, reason=body.reason
        )
        return ov.to_dict()

    @api.delete("/v1/router/overrides")
    async def delete_override(
        actor: Actor, scope: Scope, subject: Annotated[str, Query(min_length=1)], role: Role
    ) -> dict[str, Any]:
        before = await service.admin.delete_override(scope.value, subject, role, actor)
        return {"deleted": before.to_dict()}

    # -- personas -------------------------------------------------------------------------------
    @api.get("/v1/router/personas")
    async def list_personas(_: Actor) -> dict[str, Any]:
        return {"personas": {name: sla.to_dict() for name, sla in sorted(service.state.personas.items())}}

    @api.get("/v1/router/personas/{persona}")
    async def get_persona(persona: str, _: Actor) -> dict[str, Any]:
        sla = service.state.personas.get(persona)
        if sla is None:
            raise AdminError(404, f"persona {persona!r} has no SLA")
        return {"persona": persona, **sla.to_dict()}

    @api.put("/v1/router/personas/{persona}")
    async def put_persona(persona: str, body: PersonaBody, actor: Actor) -> dict[str, Any]:
        sla = await service.admin.put_persona(persona, body.model_dump(), actor)
        return {"persona": persona, **sla.to_dict()}

    @api.delete("/v1/router/personas/{persona}")
    async def delete_persona(persona: str, actor: Actor) -> dict[str, Any]:
        before = await service.admin.delete_persona(persona, actor)
        return {"deleted": {"persona": persona, **before.to_dict()}}

    # -- mode and flags -------------------------------------------------------------------------
    @api.get("/v1/router/mode")
    async def get_mode(_: Actor) -> dict[str, Any]:
        return {"mode": service.state.mode.value, "modes": [m.value for m in DeploymentMode]}

    @api.put("/v1/router/mode")
    async def put_mode(body: ModeBody, actor: Actor) -> dict[str, Any]:
        mode = await service.admin.set_mode(body.mode.value, actor)
        return {"mode": mode.value}

    @api.get("/v1/router/flags/auto-selection")
    async def get_auto(_: Actor) -> dict[str, Any]:
        return {"enabled": service.state.auto_selection}

    @api.put("/v1/router/flags/auto-selection")
    async def put_auto(body: FlagBody, actor: Actor) -> dict[str, Any]:
        return {"enabled": await service.admin.set_auto_selection(body.enabled, actor)}

    # -- telemetry, roll-ups, scores, explain ---------------------------------------------------
    @api.post("/v1/router/telemetry", status_code=202)
    async def ingest(body: TelemetryBody, actor: Actor) -> dict[str, Any]:
        items = [r.model_dump(exclude_none=True) for r in body.records]
        n = await service.admin.ingest_telemetry(items, actor)
        return {"accepted": n}

    @api.get("/v1/router/rollups")
    async def rollups(
        _: Actor, role: Role | None = None, window: Window = "5m", source: Literal["memory", "store"] = "memory"
    ) -> dict[str, Any]:
        """`memory`: this process's live view (fed by every worker's calls when on PostgreSQL);
        `store`: computed from the stored per-minute aggregates (closed minutes only)."""
        now = service.clock()
        if source == "store":
            if service.store is None or not service.started:
                raise AdminError(409, "the router runs without a store")
            found = await asyncio.to_thread(service.store.rollups, window, now, role)
        else:
            roles = [role] if role is not None else service.state.policy.profiles.roles()
            found = [r for rr in roles for r in service.rollups(rr, window)]
        return {
            "window": window,
            "window_s": WINDOWS[window],
            "now": now,
            "source": source,
            "rollups": [r.to_dict() for r in found],
        }

    @api.post("/v1/router/score")
    async def rescore(_: Actor, body: ScoreBody | None = None) -> dict[str, Any]:
        results = service.rescore(body.role if body is not None else None)
        return {"mode": service.state.mode.value, "scores": [r.to_dict() for r in results]}

    @api.get("/v1/router/explain")
    async def explain(
        _: Actor, role: Role, tenant: str | None = None, persona: str | None = None, conversation: str | None = None
    ) -> dict[str, Any]:
        ctx = CallContext(tenant=tenant, persona=persona, conversation_id=conversation)
        return service.explain(role, ctx).to_payload()

    @api.get("/v1/router/catalog")
    async def catalog(_: Actor) -> dict[str, Any]:
        return {"models": [service.catalog.entry(n).describe() for n in service.catalog.names()]}

    @api.get("/v1/router/health")
    async def health(_: Actor) -> dict[str, Any]:
        return {"breakers": [s.to_dict() for s in service.breakers.snapshots()]}

    # -- audit ----------------------------------------------------------------------------------
    @api.get("/v1/audit")
    async def audit(
        _: Actor, since: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
    ) -> dict[str, Any]:
        entries = await service.admin.audit_since(parse_since(since), limit)
        return {"entries": [e.to_dict() for e in entries]}

    return api
