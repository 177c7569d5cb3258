"""Where benchmark capsule runs (router/capsules) live: the router's database (SQLite or PostgreSQL, the same
store and migrations), or an in-memory SQLite database when the router runs without one. Synchronous, like the
store: callers use `asyncio.to_thread`.

A run's items are written as they finish, so a run that stopped (a crash, ^C) resumes where it left off: the
runner skips every (model, item) already stored under the run's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from router.store.database import RouterStore, jsonable
from router.store.schema import benchmark_items_t, benchmark_runs_t, capsules_t, promotions_t, work_items_t


@dataclass(frozen=True)
class RunRow:
    id: str
    capsule: str
    version: str
    digest: str
    role: str
    mode: str
    seed: int
    models: list[str]
    purpose: str
    status: str
    started_at: float
    finished_at: float | None
    summary: dict[str, Any] | None
    profile: dict[str, Any] | None = None  # the role's profile in the mode when the run started

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WorkItem:
    id: int
    ts: float
    kind: str
    capsule: str
    role: str
    model: str
    metric: str
    status: str
    detail: dict[str, Any]
    closed_at: float | None = None
    closed_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Promotion:
    id: str
    ts: float
    role: str
    mode: str
    model: str
    status: str
    verdict: dict[str, Any]
    requested_by: str
    decided_by: str | None = None
    decided_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class BenchmarkResults:
    def __init__(self, store: RouterStore) -> None:
        self.store = store

    @classmethod
    def in_memory(cls) -> BenchmarkResults:
        store = RouterStore("sqlite://")
        store.migrate()
        return cls(store)

    # -- capsules -------------------------------------------------------------------------------
    def put_capsule(self, name: str, version: str, kind: str, digest: str, definition: dict[str, Any],
                    now: float, actor: str) -> bool:
        """False when that name and version exist already with another definition (a version is immutable)."""
        with self.store.transaction() as conn:
            row = conn.execute(sa.select(capsules_t.c.digest).where(
                capsules_t.c.name == name, capsules_t.c.version == version)).first()
            if row is not None:
                return row.digest == digest
            conn.execute(capsules_t.insert().values(name=name, version=version, kind=kind, digest=digest,
                                                    definition=definition, created_at=now, created_by=actor))
        return True

    def capsules(self) -> list[dict[str, Any]]:
        with self.store.reading() as conn:
            return [row.definition for row in conn.execute(
                sa.select(capsules_t).order_by(capsules_t.c.name, capsules_t.c.created_at))]

    # -- runs -----------------------------------------------------------------------------------
    def start_run(self, run: RunRow) -> None:
        with self.store.transaction() as conn:
            conn.execute(benchmark_runs_t.insert().values(**jsonable(run.to_dict())))

    def finish_run(self, run_id: str, status: str, finished_at: float, summary: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            conn.execute(benchmark_runs_t.update().where(benchmark_runs_t.c.id == run_id).values(
                status=status, finished_at=finished_at, summary=jsonable(summary)))

    def get_run(self, run_id: str) -> RunRow | None:
        with self.store.reading() as conn:
            row = conn.execute(sa.select(benchmark_runs_t).where(benchmark_runs_t.c.id == run_id)).first()
        return None if row is None else RunRow(**row._asdict())

    def runs(self, *, capsule: str | None = None, role: str | None = None, status: str | None = "done",
             since: float = 0.0, limit: int = 1000) -> list[RunRow]:
        """Newest first."""
        q = sa.select(benchmark_runs_t).where(benchmark_runs_t.c.started_at >= since)
        if capsule is not None:
            q = q.where(benchmark_runs_t.c.capsule == capsule)
        if role is not None:
            q = q.where(benchmark_runs_t.c.role == role)
        if status is not None:
            q = q.where(benchmark_runs_t.c.status == status)
        q = q.order_by(benchmark_runs_t.c.started_at.desc()).limit(limit)
        with self.store.reading() as conn:
            return [RunRow(**row._asdict()) for row in conn.execute(q)]

    def put_item(self, run_id: str, model: str, item_id: str, now: float, result: dict[str, Any]) -> None:
        with self.store.transaction() as conn:
            conn.execute(benchmark_items_t.insert().values(run_id=run_id, model=model, item_id=item_id, ts=now,
                                                           result=jsonable(result)))

    def items(self, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        with self.store.reading() as conn:
            rows = conn.execute(sa.select(benchmark_items_t).where(benchmark_items_t.c.run_id == run_id))
            return {(r.model, r.item_id): r.result for r in rows}

    # -- work items -----------------------------------------------------------------------------
    def open_work_item(self, item: WorkItem) -> WorkItem | None:
        """Opens it unless one is open already for the same capsule, model and metric (then None)."""
        c = work_items_t.c
        with self.store.transaction() as conn:
            exists = conn.execute(sa.select(c.id).where(
                c.status == "open", c.capsule == item.capsule, c.model == item.model, c.metric == item.metric,
                c.kind == item.kind)).first()
            if exists is not None:
                return None
            values = {k: v for k, v in jsonable(item.to_dict()).items() if k != "id"}
            new_id = conn.execute(work_items_t.insert().values(**values)).inserted_primary_key[0]
        return WorkItem(**{**item.to_dict(), "id": int(new_id)})

    def work_items(self, status: str | None = None) -> list[WorkItem]:
        q = sa.select(work_items_t).order_by(work_items_t.c.id)
        if status is not None:
            q = q.where(work_items_t.c.status == status)
        with self.store.reading() as conn:
            return [WorkItem(**r._asdict()) for r in conn.execute(q)]

    def close_work_item(self, item_id: int, now: float, actor: str) -> WorkItem | None:
        c = work_items_t.c
        with self.store.transaction() as conn:
            done = conn.execute(work_items_t.update().where(c.id == item_id, c.status == "open").values(
                status="closed", closed_at=now, closed_by=actor)).rowcount
            row = conn.execute(sa.select(work_items_t).where(c.id == item_id)).first()
        return None if row is None or not done else WorkItem(**row._asdict())

    # -- promotions -----------------------------------------------------------------------------
    def put_promotion(self, p: Promotion) -> None:
        with self.store.transaction() as conn:
            conn.execute(promotions_t.insert().values(**jsonable(p.to_dict())))

    def get_promotion(self, promotion_id: str) -> Promotion | None:
        with self.store.reading() as conn:
            row = conn.execute(sa.select(promotions_t).where(promotions_t.c.id == promotion_id)).first()
        return None if row is None else Promotion(**row._asdict())

    def decide_promotion(self, promotion_id: str, expected: str, status: str, actor: str, now: float) -> bool:
        """Moves it from `expected` to `status`; False if it was not in `expected` (decided already, or refused)."""
        c = promotions_t.c
        with self.store.transaction() as conn:
            return bool(conn.execute(promotions_t.update().where(c.id == promotion_id, c.status == expected).values(
                status=status, decided_by=actor, decided_at=now)).rowcount)

    def promotions(self) -> list[Promotion]:
        with self.store.reading() as conn:
            return [Promotion(**r._asdict()) for r in conn.execute(
                sa.select(promotions_t).order_by(promotions_t.c.ts.desc()))]
