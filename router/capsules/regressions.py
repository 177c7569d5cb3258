"""Regressions: a model whose metrics dropped beyond tolerance between two runs of a capsule gets a work item.

After each finished run, every model is compared with its figures in the previous finished run of the same
capsule and role. Higher-is-better metrics (quality, success and pass rates, refusal accuracy, factual match,
DNSMOS, MOS-LQO) regress when they fall by more than `tolerance` (absolute, on 0..1 figures; MOS figures are
on 1..5 and get four times as much); WER and CER when they rise by more than it; p95 latency when it grows by
more than `latency_tolerance` (relative) and by more than `latency_floor_ms` (so jitter of a few milliseconds is
no regression). All of a model's regressed metrics go into one work item (stored,
listed by the API, published as `benchmark.regression`, posted to the webhook when one is configured); while
it is open, later runs do not open another for the same capsule and model.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from router.capsules.runner import RunReport
from router.events import EventBus, Topic
from router.store.benchmarks import BenchmarkResults, RunRow, WorkItem

log = logging.getLogger(__name__)

HIGHER = ("quality", "success_rate", "unit_test_pass_rate", "refusal_accuracy", "factual_match",
          "tool_call_correct", "ovrl_mos", "mos_lqo")
LOWER = ("wer", "cer")
MOS = ("ovrl_mos", "mos_lqo")


class RegressionWatch:
    def __init__(self, results: BenchmarkResults, bus: EventBus, clock: Any, *, tolerance: float = 0.05,
                 latency_tolerance: float = 0.5, latency_floor_ms: float = 100.0,
                 webhook_url: str | None = None) -> None:
        self.results = results
        self.bus = bus
        self.clock = clock
        self.tolerance = tolerance
        self.latency_tolerance = latency_tolerance
        self.latency_floor_ms = latency_floor_ms
        self.webhook_url = webhook_url

    def drops(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, float]]:
        """The regressed metrics of one model: name -> {before, after}."""
        old = {"quality": before["quality"], **before.get("metrics", {})}
        new = {"quality": after["quality"], **after.get("metrics", {})}
        out = {}
        for name in HIGHER + LOWER + ("latency_p95_ms",):
            if name not in old or name not in new:
                continue
            a, b = float(old[name]), float(new[name])
            tol = self.tolerance * (4.0 if name in MOS else 1.0)
            if (name in HIGHER and a - b > tol) or (name in LOWER and b - a > tol) or (
                    name == "latency_p95_ms" and b > a * (1.0 + self.latency_tolerance)
                    and b - a > self.latency_floor_ms):
                out[name] = {"before": round(a, 4), "after": round(b, 4)}
        return out

    async def check(self, report: RunReport) -> list[WorkItem]:
        run = report.run
        previous = await asyncio.to_thread(self._previous, run)
        if previous is None or not previous.summary:
            return []
        opened = []
        for model, summary in (run.summary or {}).items():
            before = previous.summary.get(model)
            if before is None:
                continue
            dropped = self.drops(before, summary)
            if not dropped:
                continue
            metric = "quality" if "quality" in dropped else next(iter(dropped))
            item = WorkItem(0, self.clock(), "regression", run.capsule, run.role, model, metric, "open",
                            {"metrics": dropped, "run_id": run.id, "previous_run_id": previous.id,
                             "capsule_version": run.version, "previous_version": previous.version})
            stored = await asyncio.to_thread(self.results.open_work_item, item)
            if stored is None:
                continue  # one is open for this capsule and model already
            opened.append(stored)
            self.bus.publish(Topic.REGRESSION, stored.to_dict())
            await self._post(stored)
        return opened

    def _previous(self, run: RunRow) -> RunRow | None:
        for row in self.results.runs(capsule=run.capsule, role=run.role, status="done", limit=50):
            if row.id != run.id and row.started_at <= run.started_at:
                return row
        return None

    async def _post(self, item: WorkItem) -> None:
        if not self.webhook_url:
            return
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.post(self.webhook_url, json={"work_item": item.to_dict()})
            response.raise_for_status()
        except httpx.HTTPError as exc:  # the item is stored and published; the webhook is a courtesy
            log.warning("posting work item %s to the regression webhook failed: %s", item.id, exc)
