"""The benchmark loop's parts, composed over a router: capsule library, results, runner, regression watch,
promotion gate and the schedule. The voice app and the CLI build one (`Benchmarks(router)`, started once the
router is); the router itself knows none of it (it only holds the quality aggregates the runs feed). Under
`serve --workers N` the schedule runs in worker 0, and every worker adopts the runs the others finish (their
`slm.benchmark.results` events, relayed by the bus)."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.aio import TaskSet
from router.capsules.capsule import shipped_dir
from router.capsules.gates import PromotionGate
from router.capsules.library import CapsuleLibrary
from router.capsules.regressions import RegressionWatch
from router.capsules.runner import CapsuleRunner, Progress, RunReport
from router.capsules.schedule import Schedule
from router.events import Subscription, Topic
from router.modes import DeploymentMode
from router.roles import Role
from router.store.benchmarks import BenchmarkResults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkSettings:
    directory: Path
    schedule: Schedule | None
    tolerance: float = 0.05
    webhook_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BenchmarkSettings:
        env = os.environ if environ is None else environ
        directory = Path(env["SOMAGENT_CAPSULES_DIR"]) if env.get("SOMAGENT_CAPSULES_DIR") else shipped_dir()
        tolerance = float(env.get("SOMAGENT_REGRESSION_TOLERANCE") or 0.05)
        if not 0.0 < tolerance < 1.0:
            raise ValueError("SOMAGENT_REGRESSION_TOLERANCE must be between 0 and 1")
        return cls(directory, Schedule.parse(env.get("SOMAGENT_CAPSULES_SCHEDULE")), tolerance,
                   env.get("SOMAGENT_REGRESSION_WEBHOOK_URL") or None)


class Benchmarks:
    """Built with the app, its parts made at `start` (once the router's store is open): results go to the
    router's database when it has one, else to an in-memory one."""

    def __init__(self, router: Any, settings: BenchmarkSettings | None = None,
                 results: BenchmarkResults | None = None) -> None:
        self.router = router
        self.settings = settings or BenchmarkSettings.from_env()
        self._results = results
        self.library: CapsuleLibrary
        self.watch: RegressionWatch
        self.runner: CapsuleRunner
        self.gate: PromotionGate
        self.started = False
        self._lock = asyncio.Lock()  # one run at a time: runs load models and compete for the same CPUs
        self._tasks = TaskSet()  # the schedule and the API's background runs
        self.jobs: dict[str, dict[str, Any]] = {}  # background runs the API started: status and run ids
        self._results_sub: Subscription | None = None

    @property
    def results(self) -> BenchmarkResults:
        if self._results is None:
            raise RuntimeError("the benchmarks have not started")
        return self._results

    async def start(self, *, schedule: bool = True) -> None:
        if self._results is None:
            store = self.router.store
            self._results = BenchmarkResults(store) if store is not None else await asyncio.to_thread(
                BenchmarkResults.in_memory)
        results = self._results
        self.library = CapsuleLibrary(results, self.settings.directory)
        self.watch = RegressionWatch(results, self.router.bus, self.router.clock, tolerance=self.settings.tolerance,
                                     webhook_url=self.settings.webhook_url)
        self.runner = CapsuleRunner(self.router, results, on_finished=[self.watch.check])
        self.gate = PromotionGate(self.router, self.runner, self.library, results)
        await self.library.load()
        await self.restore_quality()
        # runs finished by another worker process (the bus relays them): their figures here too
        self._results_sub = self.router.bus.subscribe({Topic.BENCHMARK_RESULTS}, maxsize=100)
        self._tasks.create_task(self._adopt_others(), name="capsules-adopt")
        self.started = True
        if schedule and self.settings.schedule is not None:
            self._tasks.create_task(self.run_on_schedule(self.settings.schedule), name="capsules-schedule")

    async def aclose(self) -> None:
        await self._tasks.aclose()
        if self._results_sub is not None:
            self._results_sub.close()

    async def _adopt_others(self) -> None:
        assert self._results_sub is not None
        async for event in self._results_sub:
            if event.origin != self.router.bus.instance_id:  # this process's own runs are applied by the runner
                self.adopt(event.payload)

    def adopt(self, payload: Mapping[str, Any]) -> None:
        """A finished run's figures (a `slm.benchmark.results` payload) into this process's aggregates."""
        role = Role(payload["role"])
        for model, s in (payload.get("summary") or {}).items():
            self.router.state.quality.set_measured(role, model, payload["capsule"], s["quality"])
        if role in self.router.state.policy.profiles.profiles:
            self.router.rescore(role, publish=False)

    async def restore_quality(self) -> None:
        """Measured quality survives a restart: the newest finished run of each capsule per model."""
        runs = await asyncio.to_thread(self.results.runs, limit=10_000)
        for run in reversed(runs):  # oldest first: newer runs overwrite
            for model, s in (run.summary or {}).items():
                self.router.state.quality.set_measured(Role(run.role), model, run.capsule, s["quality"])
        for role in {Role(r.role) for r in runs}:
            if role in self.router.state.policy.profiles.profiles:
                self.router.rescore(role, publish=False)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def running(self) -> asyncio.Lock:
        """Held while capsules run (a gate's runs take it too, so runs never overlap)."""
        return self._lock

    async def run_role(self, role: Role, *, models: list[str] | None = None, mode: DeploymentMode | None = None,
                       purpose: str = "manual", seed: int = 0, progress: Progress | None = None,
                       capsule: str | None = None) -> list[RunReport]:
        capsules = await self.library.for_role(role)
        if capsule is not None:
            capsules = [c for c in capsules if c.name == capsule]
        async with self._lock:
            return [await self.runner.run(c, role=role, models=models, mode=mode, seed=seed, purpose=purpose,
                                          progress=progress) for c in capsules]

    def start_run(self, role: Role, **kwargs: Any) -> str:
        """A run in the background (the API's); the job's id, to poll (`jobs`)."""
        tag = uuid.uuid4().hex[:12]
        job: dict[str, Any] = {"id": tag, "role": role.value, "status": "running", "runs": [], "error": None}
        self.jobs[tag] = job
        while len(self.jobs) > 100:  # bounded: the oldest finished jobs go (their runs stay stored)
            oldest = next((k for k, j in self.jobs.items() if j["status"] != "running"), None)
            if oldest is None:
                break
            del self.jobs[oldest]

        async def go() -> None:
            try:
                reports = await self.run_role(role, **kwargs)
                job.update(status="done", runs=[r.id for r in reports])
            except Exception as exc:
                job.update(status="failed", error=str(exc)[:300])
                log.exception("background capsule run %s for %s failed", tag, role.value)

        self._tasks.create_task(go(), name=f"capsules-{role.value}-{tag}")
        return tag

    async def run_all(self, purpose: str = "scheduled") -> list[RunReport]:
        """Every role of the mode that a capsule measures, over the role's candidates."""
        reports = []
        for role in self.router.state.policy.profiles.roles():
            reports += await self.run_role(role, purpose=purpose)
        return reports

    async def run_on_schedule(self, schedule: Schedule,
                              on_done: Callable[[list[RunReport]], None] | None = None) -> None:
        """Every role's capsules at each scheduled time, for ever (the server's task, the CLI's `schedule`)."""
        log.info("capsules run %s", schedule.describe())
        while True:
            await asyncio.sleep(max(0.0, schedule.next_after(self.router.clock()) - self.router.clock()))
            try:
                reports = await self.run_all()
            except Exception:
                log.exception("a scheduled capsule run failed; the next one is on schedule")
                continue
            log.info("scheduled capsule runs done: %s", ", ".join(r.id for r in reports))
            if on_done is not None:
                on_done(reports)
