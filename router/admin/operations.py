"""Admin operations: validate, persist with an audit entry in one transaction, apply, publish.

Input arrives validated in shape and range by the API's bodies (router.admin.api); what is checked here
is only what needs the router's state: that a named model exists and serves the role, that a profile
exists in the mode, that fallbacks do not repeat, that a credentials reference is a name and not a secret,
that an ingested record is not from the future. Every change is checked completely before anything
is written (invalid input changes nothing), written together with its audit entry and a new
configuration version, then applied in memory and announced (`model.profile.updated`, `mode.changed`,
`router.flags.changed`). Changes are serialised so each audit entry's "before" is exact.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from router.audit import AuditEntry, MemoryAuditLog
from router.breaker import BreakerBoard
from router.catalog import Catalog, role_unit
from router.clock import Clock
from router.events import EventBus, Topic
from router.modes import DeploymentMode
from router.overrides import Override, Scope, check_subject
from router.personas import PersonaSLA
from router.profiles import ModelProfile
from router.recorder import CallRecorder
from router.roles import Role
from router.state import RoutingState
from router.store import Change, RouterStore
from router.store.aggregates import RollupBuckets
from router.telemetry import CallRecord, Outcome

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]{0,199}$")
_SECRET_LIKE = re.compile(r"^(sk-|sk_|pk-|xox[abp]-|ghp_|AKIA)|^[A-Za-z0-9+/=_-]{40,}$")
FUTURE_SKEW_S = 300.0
SCOPES = "scope must be 'tenant', 'persona' or 'tenant_persona'"


class AdminError(Exception):
    """A rejected admin request: `status` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RouterAdmin:
    """The admin operations over the routing state; handed its parts by the composition root."""

    def __init__(
        self,
        *,
        state: RoutingState,
        catalog: Catalog,
        bus: EventBus,
        breakers: BreakerBoard,
        recorder: CallRecorder,
        rescore: Callable[[], object],
        open_store: Callable[[], RouterStore | None],
        memory_audit: MemoryAuditLog,
        clock: Clock,
    ) -> None:
        self._state = state
        self._catalog = catalog
        self._bus = bus
        self._breakers = breakers
        self._recorder = recorder
        self._rescore = rescore  # re-score without publishing: scores follow the new configuration
        self._open_store = open_store  # the store while the router runs with one, else None
        self._memory_audit = memory_audit
        self._clock = clock
        self._lock = asyncio.Lock()

    # -- plumbing -------------------------------------------------------------------------------
    async def _commit(
        self, kind: str, key: dict[str, Any], stored: Any, audit: AuditEntry, apply: Callable[[], None]
    ) -> AuditEntry:
        return (await self._commit_all([Change(kind, key, stored, audit)], apply))[0]

    async def _commit_all(self, changes: list[Change], apply: Callable[[], None]) -> list[AuditEntry]:
        """Persist (all or nothing), then apply in memory; without a store, audit goes to memory."""
        store = self._open_store()
        if store is not None:
            version, ids = await asyncio.to_thread(store.apply_changes, changes)
            audits = [replace(c.audit, id=i) for c, i in zip(changes, ids, strict=True)]
        else:
            version = self._state.version + 1
            audits = [self._memory_audit.append(c.audit) for c in changes]
        apply()
        self._state.version = version
        return audits

    def _role(self, role: str | Role) -> Role:
        try:
            return Role(role)
        except ValueError:
            raise AdminError(404, f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}") from None

    def _mode(self, mode: str | DeploymentMode | None) -> DeploymentMode:
        if mode is None:
            return self._state.mode
        try:
            return DeploymentMode(mode)
        except ValueError:
            raise AdminError(
                422, f"unknown mode {mode!r}; modes: {', '.join(m.value for m in DeploymentMode)}"
            ) from None

    def _check_model(self, model: str, role: Role) -> None:
        entry = self._catalog.get(model)
        if entry is None:
            raise AdminError(422, f"model {model!r} is not in the catalogue")
        if not entry.serves(role):
            raise AdminError(422, f"model {model!r} does not serve role {role.value!r}")

    def _audit(self, actor: str, action: str, target: str, before: Any, after: Any) -> AuditEntry:
        return AuditEntry(self._clock(), actor, action, target, before, after)

    def _announce_profile(self, kind: str, audit: AuditEntry, **extra: Any) -> None:
        self._rescore()  # the scores' normalisation and cached verdicts follow the new config
        self._bus.publish(
            Topic.PROFILE_UPDATED,
            {
                "kind": kind,
                "target": audit.target,
                "before": audit.before,
                "after": audit.after,
                "actor": audit.actor,
                "audit_id": audit.id,
                "config_version": self._state.version,
                "mode": self._state.mode.value,
                **extra,
            },
        )

    # -- profiles -------------------------------------------------------------------------------
    async def put_profile(
        self, role: str | Role, data: dict[str, Any], actor: str, mode: str | DeploymentMode | None = None
    ) -> ModelProfile:
        r = self._role(role)
        m = self._mode(mode)
        if r not in self._state.policies[m].profiles.profiles:
            raise AdminError(404, f"mode {m.value!r} has no profile for role {r.value!r}")
        profile = self._validate_profile(r, data)
        async with self._lock:
            before = self._state.profile(r, m)
            audit = self._audit(actor, "profile.put", f"{m.value}/{r.value}", before.to_dict(), profile.to_dict())

            def apply() -> None:
                self._state.custom_profiles.setdefault(m, {})[r] = profile

            audit = await self._commit("profile", {"mode": m.value, "role": r.value}, profile.to_dict(), audit, apply)
            self._announce_profile("profile", audit, role=r.value, profile_mode=m.value)
        return profile

    async def put_profiles(
        self, items: dict[str, dict[str, Any]], actor: str, mode: str | DeploymentMode | None = None
    ) -> list[ModelProfile]:
        """Replace several roles' profiles at once: every one is valid and written, or none is."""
        m = self._mode(mode)
        profiles: list[ModelProfile] = []
        for role, data in items.items():
            r = self._role(role)
            if r not in self._state.policies[m].profiles.profiles:
                raise AdminError(404, f"mode {m.value!r} has no profile for role {r.value!r}")
            try:
                profiles.append(self._validate_profile(r, data))
            except AdminError as exc:
                raise AdminError(exc.status, f"{r.value}: {exc.message}") from None
        async with self._lock:
            changes = []
            for p in profiles:
                before = self._state.profile(p.role, m)
                audit = self._audit(actor, "profile.put", f"{m.value}/{p.role.value}", before.to_dict(), p.to_dict())
                changes.append(Change("profile", {"mode": m.value, "role": p.role.value}, p.to_dict(), audit))

            def apply() -> None:
                for p in profiles:
                    self._state.custom_profiles.setdefault(m, {})[p.role] = p

            audits = await self._commit_all(changes, apply)
            for p, audit in zip(profiles, audits, strict=True):
                self._announce_profile("profile", audit, role=p.role.value, profile_mode=m.value)
        return profiles

    async def reset_profile(
        self, role: str | Role, actor: str, mode: str | DeploymentMode | None = None
    ) -> ModelProfile:
        """Back to the mode's default profile for the role."""
        r = self._role(role)
        m = self._mode(mode)
        async with self._lock:
            custom = self._state.custom_profiles.get(m, {}).get(r)
            if custom is None:
                raise AdminError(404, f"role {r.value!r} already uses the {m.value} default profile")
            default = self._state.default_profile(r, m)
            audit = self._audit(actor, "profile.reset", f"{m.value}/{r.value}", custom.to_dict(), default.to_dict())

            def apply() -> None:
                self._state.custom_profiles.get(m, {}).pop(r, None)

            audit = await self._commit("profile", {"mode": m.value, "role": r.value}, None, audit, apply)
            self._announce_profile("profile", audit, role=r.value, profile_mode=m.value)
        return default

    def _validate_profile(self, role: Role, data: dict[str, Any]) -> ModelProfile:
        primary = data["primary"]
        fallbacks = list(data.get("fallbacks") or [])
        if primary in fallbacks:
            raise AdminError(422, "fallbacks must not repeat the primary model")
        if len(set(fallbacks)) != len(fallbacks):
            raise AdminError(422, "fallbacks must not contain duplicates")
        for name in [primary, *fallbacks]:
            self._check_model(name, role)
        temperature = data.get("temperature")
        max_tokens = data.get("max_tokens")
        cred = data.get("credentials_ref")
        if cred is not None:
            if _SECRET_LIKE.search(cred):
                raise AdminError(422, "credentials_ref must be the *name* of a secret or env var, not the secret")
            if not _NAME.match(cred):
                raise AdminError(422, "credentials_ref must be a secret or env var name ([A-Za-z_][A-Za-z0-9_.:/-]*)")
        return ModelProfile(
            role=role,
            primary=primary,
            fallbacks=tuple(fallbacks),
            temperature=None if temperature is None else float(temperature),
            max_tokens=None if max_tokens is None else int(max_tokens),
            credentials_ref=cred,
            first_output_deadline_s=data.get("first_output_deadline_s"),
            stall_timeout_s=data.get("stall_timeout_s"),
        )

    # -- overrides ------------------------------------------------------------------------------
    async def put_override(
        self,
        scope: str,
        subject: str,
        role: str | Role,
        model: str,
        actor: str,
        *,
        locked: bool = False,
        reason: str = "",
    ) -> Override:
        try:
            sc = Scope(scope)
        except ValueError:
            raise AdminError(422, SCOPES) from None
        try:
            check_subject(sc, subject)
        except ValueError as exc:
            raise AdminError(422, str(exc)) from None
        r = self._role(role)
        self._check_model(model, r)
        async with self._lock:
            before = self._state.overrides.get(sc, subject, r)
            override = Override(sc, subject, r, model, locked, reason, actor, self._clock())
            audit = self._audit(
                actor,
                "override.put",
                f"{sc.value}:{subject}/{r.value}",
                None if before is None else before.to_dict(),
                override.to_dict(),
            )
            audit = await self._commit(
                "override",
                {"scope": sc.value, "subject": subject, "role": r.value},
                override,
                audit,
                lambda: self._state.overrides.put(override),
            )
            self._announce_profile("override", audit, role=r.value)
        return override

    async def delete_override(self, scope: str, subject: str, role: str | Role, actor: str) -> Override:
        try:
            sc = Scope(scope)
        except ValueError:
            raise AdminError(422, SCOPES) from None
        r = self._role(role)
        async with self._lock:
            before = self._state.overrides.get(sc, subject, r)
            if before is None:
                raise AdminError(404, f"no {sc.value} override for {subject!r} on role {r.value!r}")
            audit = self._audit(actor, "override.delete", f"{sc.value}:{subject}/{r.value}", before.to_dict(), None)
            audit = await self._commit(
                "override",
                {"scope": sc.value, "subject": subject, "role": r.value},
                None,
                audit,
                lambda: self._state.overrides.remove(sc, subject, r),
            )
            self._announce_profile("override", audit, role=r.value)
        return before

    # -- personas -------------------------------------------------------------------------------
    async def put_persona(self, persona: str, data: dict[str, Any], actor: str) -> PersonaSLA:
        if not persona or len(persona) > 200:
            raise AdminError(422, "persona name (1-200 characters) is required")
        sla = PersonaSLA.from_dict(data)
        async with self._lock:
            before = self._state.personas.get(persona)
            audit = self._audit(
                actor, "persona.put", persona, None if before is None else before.to_dict(), sla.to_dict()
            )
            audit = await self._commit(
                "persona",
                {"persona": persona},
                sla.to_dict(),
                audit,
                lambda: self._state.personas.__setitem__(persona, sla),
            )
            self._announce_profile("persona", audit, persona=persona)
        return sla

    async def delete_persona(self, persona: str, actor: str) -> PersonaSLA:
        async with self._lock:
            before = self._state.personas.get(persona)
            if before is None:
                raise AdminError(404, f"persona {persona!r} has no SLA")
            audit = self._audit(actor, "persona.delete", persona, before.to_dict(), None)
            audit = await self._commit(
                "persona", {"persona": persona}, None, audit, lambda: self._state.personas.pop(persona, None)
            )
            self._announce_profile("persona", audit, persona=persona)
        return before

    # -- mode and flags -------------------------------------------------------------------------
    async def set_mode(self, mode: str, actor: str) -> DeploymentMode:
        m = self._mode(mode)
        async with self._lock:
            before = self._state.mode
            audit = self._audit(actor, "mode.set", "mode", {"mode": before.value}, {"mode": m.value})

            def apply() -> None:
                self._state.mode = m
                self._breakers.reconfigure(self._state.policy.breaker)
                self._rescore()

            audit = await self._commit("setting", {"key": "mode"}, m.value, audit, apply)
            self._bus.publish(
                Topic.MODE_CHANGED,
                {
                    "before": before.value,
                    "after": m.value,
                    "actor": actor,
                    "audit_id": audit.id,
                    "config_version": self._state.version,
                },
            )
        return m

    async def set_auto_selection(self, enabled: bool, actor: str) -> bool:
        async with self._lock:
            before = self._state.auto_selection
            audit = self._audit(
                actor, "flag.auto_selection", "flags/auto-selection", {"enabled": before}, {"enabled": bool(enabled)}
            )
            audit = await self._commit(
                "setting",
                {"key": "auto_selection"},
                bool(enabled),
                audit,
                lambda: setattr(self._state, "auto_selection", bool(enabled)),
            )
            self._bus.publish(
                Topic.FLAGS_CHANGED,
                {
                    "flag": "auto_selection",
                    "before": before,
                    "after": bool(enabled),
                    "actor": actor,
                    "audit_id": audit.id,
                    "config_version": self._state.version,
                },
            )
        return bool(enabled)

    # -- telemetry ingest -----------------------------------------------------------------------
    async def ingest_telemetry(self, items: list[dict[str, Any]], actor: str) -> int:
        """Batch ingest (e.g. from billing logs): all records are valid, or none is stored."""
        now = self._clock()
        records = []
        for i, item in enumerate(items):
            try:
                records.append(self._ingest_record(item, now))
            except AdminError as exc:
                raise AdminError(exc.status, f"records[{i}]: {exc.message}") from None
        store = self._open_store()
        if store is not None:
            buckets = RollupBuckets()
            for rec in records:
                buckets.add(rec)
            await asyncio.to_thread(store.write_telemetry, records, buckets.take(now, everything=True))
        for rec in records:
            self._recorder.record(rec, persist=False)
        return len(records)

    def _ingest_record(self, item: dict[str, Any], now: float) -> CallRecord:
        role = Role(item["role"])
        model = item["model"]
        outcome = Outcome(item.get("outcome", "ok"))
        ts = float(item.get("ts") if item.get("ts") is not None else now)
        if ts > now + FUTURE_SKEW_S:
            raise AdminError(422, "ts is in the future")
        cost = item.get("cost")
        units_in, units_out = float(item.get("units_in") or 0.0), float(item.get("units_out") or 0.0)
        if cost is None:
            entry = self._catalog.get(model)
            if entry is not None and entry.price is not None:
                cost = entry.price.cost(units_in, units_out)
        return CallRecord(
            ts=ts,
            role=role,
            model=model,
            outcome=outcome,
            latency_ms=float(item["latency_ms"]),
            ttft_ms=item.get("ttft_ms"),
            units_in=units_in,
            units_out=units_out,
            unit=role_unit(role),
            cost=None if cost is None else float(cost),
            tenant=item.get("tenant"),
            persona=item.get("persona"),
            conversation_id=item.get("conversation_id"),
            source="ingest",
            error=str(item.get("error") or ""),
        )

    # -- audit ----------------------------------------------------------------------------------
    async def record(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> AuditEntry:
        """An audit entry for something that changes no configuration (an inspection of stored data): `detail`
        holds hashes and derived metrics, never audio or transcript text (the caller's duty)."""
        entry = self._audit(actor, action, target, None, detail)
        store = self._open_store()
        if store is not None:
            return replace(entry, id=await asyncio.to_thread(store.append_audit, entry))
        return self._memory_audit.append(entry)

    async def audit_since(self, since: float, limit: int = 1000) -> list[AuditEntry]:
        store = self._open_store()
        if store is not None:
            return await asyncio.to_thread(store.audit_since, since, limit)
        return self._memory_audit.since(since, limit)
