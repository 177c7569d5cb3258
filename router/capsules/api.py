"""The benchmark HTTP API (admin key, `admin:models` capability, reads audited like every admin route):

- `GET/POST /v1/router/capsules`: list the capsules; add one (validated; a name@version is immutable).
- `POST /v1/router/capsules/runs` `{role, models?, mode?, capsule?, seed?}`: start a run (202, a job to poll at
  `GET /v1/router/capsules/jobs/{id}`); `GET /v1/router/capsules/runs[?role&capsule&since]`, `.../runs/{id}`.
- `GET /v1/router/quality`: the per-model quality aggregates (capsule figures and live feedback).
- `GET /v1/router/work-items[?status]`, `POST /v1/router/work-items/{id}/close`.
- `POST /v1/router/promotions` `{role, model, mode?}` (runs the gate), `GET /v1/router/promotions`,
  `POST /v1/router/promotions/{id}/approve`, `POST /v1/router/promotions/{id}/stage` `{tenant}`.
- `GET /v1/router/reports.csv|.pdf?role&since&until`: the runs of a role and period.

No `from __future__ import annotations` here: FastAPI reads the route signatures' `Actor` (a local alias) at
definition time.
"""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from router.admin.api import AdminRoute, AdminService, admin_actor, parse_since
from router.admin.operations import AdminError
from router.capsules.capsule import CapsuleError
from router.capsules.gates import GateError
from router.capsules.report import csv_report, pdf_report
from router.capsules.service import Benchmarks
from router.modes import DeploymentMode
from router.overrides import Scope, check_subject
from router.roles import Role


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(None, max_length=20)
    mode: DeploymentMode | None = None
    capsule: str | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


class PromotionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    model: Annotated[str, Field(min_length=1, max_length=200)]
    mode: DeploymentMode | None = None


class StageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: Annotated[str, Field(min_length=1, max_length=200)]


def benchmark_routes(service: AdminService, benchmarks: Benchmarks) -> APIRouter:
    check = admin_actor(service)

    async def started_actor(request: Request) -> str:
        name = await check(request)
        if not benchmarks.started:
            raise AdminError(503, "the benchmarks are starting; try again in a moment")
        return name

    Actor = Annotated[str, Depends(started_actor)]
    api = APIRouter(tags=["router-benchmarks"], route_class=AdminRoute)

    @api.get("/v1/router/capsules")
    async def list_capsules(_: Actor) -> dict[str, Any]:
        return {"capsules": [{"name": c.name, "version": c.version, "kind": c.kind, "digest": c.digest,
                              "roles": [r.value for r in c.roles], "items": len(c.items)}
                             for c in await benchmarks.library.all()]}

    @api.post("/v1/router/capsules", status_code=201)
    async def add_capsule(body: dict[str, Any], actor: Actor) -> dict[str, Any]:
        try:
            capsule = await benchmarks.library.add(body, actor, service.clock())
        except CapsuleError as exc:
            raise AdminError(409 if "exists" in str(exc) else 422, str(exc)) from None
        await service.admin.record(actor, "capsule.add", capsule.key, {"digest": capsule.digest})
        return {"name": capsule.name, "version": capsule.version, "digest": capsule.digest}

    @api.post("/v1/router/capsules/runs", status_code=202)
    async def start_run(body: RunBody, actor: Actor) -> dict[str, Any]:
        capsules = await benchmarks.library.for_role(body.role)
        if not capsules:
            raise AdminError(404, f"no capsule measures role {body.role.value!r}")
        if body.capsule is not None and body.capsule not in {c.name for c in capsules}:
            raise AdminError(404, f"no capsule {body.capsule!r} measures role {body.role.value!r}")
        if benchmarks.busy:
            raise AdminError(409, "a capsule run is in progress; try again when it is done")
        for name in body.models or []:
            entry = service.catalog.get(name)
            if entry is None or not entry.serves(body.role):
                raise AdminError(422, f"model {name!r} does not serve role {body.role.value!r}")
        job = benchmarks.start_run(body.role, models=body.models, mode=body.mode, capsule=body.capsule,
                                   seed=body.seed, purpose="api")
        await service.admin.record(actor, "capsules.run", body.role.value, {"job": job})
        return benchmarks.jobs[job]

    @api.get("/v1/router/capsules/jobs/{job}")
    async def get_job(job: str, _: Actor) -> dict[str, Any]:
        found = benchmarks.jobs.get(job)
        if found is None:
            raise AdminError(404, f"no job {job!r}")
        return found

    @api.get("/v1/router/capsules/runs")
    async def list_runs(_: Actor, role: Role | None = None, capsule: str | None = None, since: str | None = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        rows = await asyncio.to_thread(benchmarks.results.runs, capsule=capsule, role=role.value if role else None,
                                       status=None, since=parse_since(since), limit=limit)
        return {"runs": [r.to_dict() for r in rows]}

    @api.get("/v1/router/capsules/runs/{run_id}")
    async def get_run(run_id: str, _: Actor) -> dict[str, Any]:
        row = await asyncio.to_thread(benchmarks.results.get_run, run_id)
        if row is None:
            raise AdminError(404, f"no run {run_id!r}")
        items = await asyncio.to_thread(benchmarks.results.items, run_id)
        return {**row.to_dict(), "items": [{"model": m, "item_id": i, **r} for (m, i), r in sorted(items.items())]}

    @api.get("/v1/router/quality")
    async def quality(_: Actor) -> dict[str, Any]:
        return {"quality": service.state.quality.to_dict()}

    @api.get("/v1/router/work-items")
    async def work_items(_: Actor, status: str | None = None) -> dict[str, Any]:
        return {"work_items": [w.to_dict() for w in await asyncio.to_thread(benchmarks.results.work_items, status)]}

    @api.post("/v1/router/work-items/{item_id}/close")
    async def close_work_item(item_id: int, actor: Actor) -> dict[str, Any]:
        item = await asyncio.to_thread(benchmarks.results.close_work_item, item_id, service.clock(), actor)
        if item is None:
            raise AdminError(404, f"no open work item {item_id}")
        await service.admin.record(actor, "work_item.close", str(item_id), {"metric": item.metric})
        return item.to_dict()

    @api.get("/v1/router/promotions")
    async def promotions(_: Actor) -> dict[str, Any]:
        return {"promotions": [p.to_dict() for p in await asyncio.to_thread(benchmarks.results.promotions)]}

    @api.post("/v1/router/promotions", status_code=201)
    async def propose(body: PromotionBody, actor: Actor) -> dict[str, Any]:
        if benchmarks.busy:
            raise AdminError(409, "a capsule run is in progress; try again when it is done")
        try:
            async with benchmarks.running():
                return (await benchmarks.gate.propose(body.role, body.model, actor, body.mode)).to_dict()
        except GateError as exc:
            raise AdminError(exc.status, exc.message) from None

    @api.post("/v1/router/promotions/{promotion_id}/approve")
    async def approve(promotion_id: str, actor: Actor) -> dict[str, Any]:
        try:
            return (await benchmarks.gate.approve(promotion_id, actor)).to_dict()
        except GateError as exc:
            raise AdminError(exc.status, exc.message) from None

    @api.post("/v1/router/promotions/{promotion_id}/stage")
    async def stage(promotion_id: str, body: StageBody, actor: Actor) -> dict[str, Any]:
        try:
            check_subject(Scope.TENANT, body.tenant)
        except ValueError as exc:
            raise AdminError(422, str(exc)) from None
        try:
            return {**(await benchmarks.gate.stage(promotion_id, body.tenant, actor)).to_dict(),
                    "staged_tenant": body.tenant}
        except GateError as exc:
            raise AdminError(exc.status, exc.message) from None

    async def period(role: Role, since: str | None, until: str | None) -> list[Any]:
        start, end = parse_since(since), parse_since(until) or float("inf")
        rows = await asyncio.to_thread(benchmarks.results.runs, role=role.value, since=start, limit=10_000)
        return [r for r in rows if r.started_at <= end]

    @api.get("/v1/router/reports.csv")
    async def report_csv(_: Actor, role: Role, since: str | None = None, until: str | None = None) -> Response:
        runs = await period(role, since, until)
        return Response(csv_report(runs), media_type="text/csv", headers={
            "content-disposition": f'attachment; filename="capsules-{role.value}.csv"'})

    @api.get("/v1/router/reports.pdf")
    async def report_pdf(_: Actor, role: Role, since: str | None = None, until: str | None = None) -> Response:
        runs = await period(role, since, until)
        pdf = await asyncio.to_thread(pdf_report, runs, title=f"Capsule runs: {role.value}",
                                      tolerance=benchmarks.settings.tolerance)
        return Response(pdf, media_type="application/pdf", headers={
            "content-disposition": f'attachment; filename="capsules-{role.value}.pdf"'})

    return api
