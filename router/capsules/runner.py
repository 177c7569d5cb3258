"""Run capsules over models through the router's own call path, store every item, and feed the result back.

Each text and code item goes through `ModelRouter.stream_chat(only=model)` (the model's adapter behind its
breaker, deadlines and metering, filed as source "capsule"), speech synthesis through `synthesize(only=...)`,
transcription through the recogniser's adapter in 200 ms pushes as a live stream arrives. Items are stored as
they finish (resumable); at the end the per-model summary is stored, published as `slm.benchmark.results`, put
into the router's quality aggregates, and the role re-scored (`model.profile.scored`). A run is reproducible:
it records the capsule's name, version and digest, the models, the deployment mode, the seed and the purpose,
and asks at temperature 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from adapters.asr.base import SAMPLE_RATE
from adapters.llm.base import ChatMessage, ChatRequest, ToolSpec
from dsp import resample
from router.capsules.capsule import Capsule, CodeItem, SynthesisItem, TextItem, TranscriptionItem
from router.capsules.metrics import percentile, refused, score_text, speech_errors
from router.capsules.sandbox import extract_code, run_tests
from router.capsules.speech import synthesis_scores
from router.context import CallContext
from router.events import Topic
from router.modes import DeploymentMode
from router.roles import Role
from router.store.benchmarks import BenchmarkResults, RunRow

log = logging.getLogger(__name__)

PUSH_SAMPLES = SAMPLE_RATE // 5  # 200 ms pushes
MAX_TOKENS = 256
CAPSULE_CTX = CallContext(source="capsule")
CODE_SYSTEM = "Write the Python code asked for. Answer with one ```python fenced block and nothing else."
Progress = Callable[[str, str, int, int], None]  # model, item id, items done, items in all


class RunError(ValueError):
    """A run that cannot start: a resumed run of another capsule, a model that does not serve the role."""


@dataclass
class ModelSummary:
    model: str
    quality: float
    items: int
    failures: int
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "quality": round(self.quality, 4), "items": self.items,
                "failures": self.failures, "metrics": {k: round(v, 4) for k, v in self.metrics.items()}}


@dataclass
class RunReport:
    run: RunRow
    summaries: dict[str, ModelSummary]
    resumed_items: int = 0

    @property
    def id(self) -> str:
        return self.run.id

    def to_dict(self) -> dict[str, Any]:
        return {**self.run.to_dict(), "resumed_items": self.resumed_items,
                "summary": {m: s.to_dict() for m, s in self.summaries.items()}}


def _audio(path: Any) -> np.ndarray:
    pcm, rate = sf.read(path, dtype="int16", always_2d=True)
    mono = pcm[:, 0]
    return mono if rate == SAMPLE_RATE else resample(mono, rate, SAMPLE_RATE)


class CapsuleRunner:
    """Handed the router (the call path and its parts) and where results go; `on_finished` hears every finished
    run (the regression watch)."""

    def __init__(self, router: Any, results: BenchmarkResults, *,
                 on_finished: Sequence[Callable[[RunReport], Any]] = ()) -> None:
        self.router = router
        self.results = results
        self._on_finished = list(on_finished)

    def models_for(self, role: Role, mode: DeploymentMode | None = None) -> list[str]:
        return list(self.router.state.profile(role, mode).candidates)

    async def run(self, capsule: Capsule, *, role: Role | None = None, models: Sequence[str] | None = None,
                  mode: DeploymentMode | None = None, seed: int = 0, purpose: str = "manual",
                  resume: str | None = None, progress: Progress | None = None,
                  run_id: str | None = None) -> RunReport:
        role = role or capsule.roles[0]
        mode = mode or self.router.state.mode
        if role not in capsule.roles:
            raise RunError(f"capsule {capsule.key} measures {', '.join(r.value for r in capsule.roles)}, "
                           f"not {role.value}")
        done: dict[tuple[str, str], dict[str, Any]] = {}
        if resume is not None:
            row = await asyncio.to_thread(self.results.get_run, resume)
            if row is None:
                raise RunError(f"no run {resume!r} to resume")
            if row.digest != capsule.digest:
                raise RunError(f"run {resume} was of {row.capsule}@{row.version} (another definition)")
            done = await asyncio.to_thread(self.results.items, resume)
        else:
            names = list(models) if models else self.models_for(role, mode)
            for name in names:
                entry = self.router.catalog.get(name)
                if entry is None or not entry.serves(role):
                    raise RunError(f"model {name!r} does not serve role {role.value!r}")
            row = RunRow(run_id or uuid.uuid4().hex[:16], capsule.name, capsule.version, capsule.digest, role.value,
                         mode.value, seed, names, purpose, "running", self.router.clock(), None, None,
                         self.router.state.profile(role, mode).to_dict())
            await asyncio.to_thread(self.results.start_run, row)
        total = len(row.models) * len(capsule.items)
        resumed, count = len(done), 0
        for model in row.models:
            unavailable = await self._start(model)  # loaded once: a measured call pays no start-up
            for item in capsule.items:
                count += 1
                if (model, item.id) not in done:
                    result = ({"ok": False, "score": 0.0, "metrics": {}, "error": unavailable} if unavailable
                              else await self._item(capsule, role, model, item))
                    await asyncio.to_thread(self.results.put_item, row.id, model, item.id, self.router.clock(),
                                            result)
                    done[(model, item.id)] = result
                if progress is not None:
                    progress(model, item.id, count, total)
        summaries = {m: summarise(capsule, m, [done[(m, i.id)] for i in capsule.items]) for m in row.models}
        summary = {m: s.to_dict() for m, s in summaries.items()}
        finished = self.router.clock()
        await asyncio.to_thread(self.results.finish_run, row.id, "done", finished, summary)
        row = RunRow(**{**row.to_dict(), "status": "done", "finished_at": finished, "summary": summary})
        report = RunReport(row, summaries, resumed_items=resumed)
        self.apply(report)
        self.router.bus.publish(Topic.BENCHMARK_RESULTS, report.to_dict())
        for hook in self._on_finished:
            outcome = hook(report)
            if asyncio.iscoroutine(outcome):
                await outcome
        return report

    def apply(self, report: RunReport) -> None:
        """The run's qualities into the router's aggregates; the role re-scored and announced."""
        role = Role(report.run.role)
        for name, s in report.summaries.items():
            self.router.state.quality.set_measured(role, name, report.run.capsule, s.quality)
        self.router.rescore(role)

    async def _start(self, model: str) -> str | None:
        """None when the model is up; else why not (its items then score 0, and the run goes on)."""
        try:
            await self.router.catalog.adapter(model).start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("capsule run: %s did not start: %s", model, exc)
            return f"did not start: {exc}"[:300]
        return None

    # -- one item -------------------------------------------------------------------------------
    async def _item(self, capsule: Capsule, role: Role, model: str, item: Any) -> dict[str, Any]:
        try:
            if isinstance(item, TextItem):
                return await self._text(role, model, item)
            if isinstance(item, CodeItem):
                return await self._code(role, model, item)
            if isinstance(item, TranscriptionItem):
                return await self._transcription(capsule, model, item)
            assert isinstance(item, SynthesisItem)
            return await self._synthesis(model, item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a model that fails an item scores 0 on it; the run goes on
            log.info("capsule item %s on %s failed: %s", item.id, model, exc)
            return {"ok": False, "score": 0.0, "metrics": {}, "error": str(exc)[:300]}

    async def _chat(self, role: Role, model: str, messages: list[ChatMessage],
                    tools: tuple[ToolSpec, ...] = ()) -> dict[str, Any]:
        profile = self.router.state.profile(role)
        request = ChatRequest(messages=tuple(messages), temperature=0.0,
                              max_tokens=min(profile.max_tokens or MAX_TOKENS, MAX_TOKENS),
                              metadata={"purpose": "capsule"}, tools=tools)
        text: list[str] = []
        calls: dict[int, list[str]] = {}
        usage = None
        began = time.perf_counter()
        first = None
        async for chunk in self.router.stream_chat(role, request, CAPSULE_CTX, only=model):
            if (chunk.text or chunk.tool_calls) and first is None:
                first = time.perf_counter()
            text.append(chunk.text)
            for d in chunk.tool_calls:
                slot = calls.setdefault(d.index, ["", ""])
                slot[0] = slot[0] or (d.name or "")
                slot[1] += d.arguments
            usage = chunk.usage or usage
        latency = (time.perf_counter() - began) * 1000.0
        reply = "".join(text)
        tokens_in = usage.input_tokens if usage else round(sum(len(m.content) for m in messages) / 4)
        tokens_out = usage.output_tokens if usage else round(len(reply) / 4)
        entry = self.router.catalog.entry(model)
        cost = entry.price.cost(tokens_in, tokens_out) if entry.price is not None else None
        return {"reply": reply, "calls": [tuple(c) for _, c in sorted(calls.items())], "latency_ms": latency,
                "ttft_ms": None if first is None else (first - began) * 1000.0, "tokens_in": tokens_in,
                "tokens_out": tokens_out, "cost": cost}

    async def _text(self, role: Role, model: str, item: TextItem) -> dict[str, Any]:
        messages = ([ChatMessage("system", item.system)] if item.system else []) + [ChatMessage("user", item.prompt)]
        tools = tuple(ToolSpec(t["name"], t.get("description", ""), t.get("parameters") or
                               {"type": "object", "properties": {}}) for t in item.tools)
        out = await self._chat(role, model, messages, tools)
        scored = score_text(item, out["reply"], out["calls"])
        metrics = dict(scored.metrics)
        if item.task == "refusal":
            metrics["refused"] = float(refused(out["reply"]))
        return {"ok": True, "score": scored.score, "metrics": metrics, "task": item.task,
                "output": out["reply"][:2000], **_call_fields(out)}

    async def _code(self, role: Role, model: str, item: CodeItem) -> dict[str, Any]:
        out = await self._chat(role, model, [ChatMessage("system", CODE_SYSTEM), ChatMessage("user", item.prompt)])
        outcome = await run_tests(extract_code(out["reply"]), item.tests, item.timeout_s)
        return {"ok": True, "score": outcome.pass_rate, "task": "code",
                "metrics": {"unit_test_pass_rate": outcome.pass_rate, "tests_passed": float(outcome.passed)},
                "test_error": outcome.error, "output": out["reply"][:2000], **_call_fields(out)}

    async def _transcription(self, capsule: Capsule, model: str, item: TranscriptionItem) -> dict[str, Any]:
        adapter = self.router.catalog.adapter(model)
        pcm = await asyncio.to_thread(_audio, capsule.audio_path(item))
        stream = adapter.stream()
        try:
            for i in range(0, len(pcm), PUSH_SAMPLES):
                await stream.push(pcm[i:i + PUSH_SAMPLES], partial=False)
            began = time.perf_counter()
            final = await stream.finish()
            latency = (time.perf_counter() - began) * 1000.0
        finally:
            await stream.aclose()
        errors = speech_errors([item.transcript], [final.text])
        return {"ok": True, "score": max(0.0, 1.0 - errors["wer"]), "metrics": errors, "task": "transcription",
                "output": final.text, "reference": item.transcript, "latency_ms": latency,
                "audio_s": len(pcm) / SAMPLE_RATE}

    async def _synthesis(self, model: str, item: SynthesisItem) -> dict[str, Any]:
        blocks, rate = [], SAMPLE_RATE
        began = time.perf_counter()
        first = None
        async for pcm, block_rate in self.router.synthesize(item.text, CAPSULE_CTX, only=model):
            first, rate = (first if first is not None else time.perf_counter()), block_rate
            blocks.append(np.asarray(pcm, dtype=np.int16))
        latency = (time.perf_counter() - began) * 1000.0
        audio = np.concatenate(blocks) if blocks else np.zeros(0, np.int16)
        if len(audio) < rate // 4:
            return {"ok": False, "score": 0.0, "metrics": {}, "error": "no speech came out", "latency_ms": latency}
        scores = await asyncio.to_thread(synthesis_scores, audio, rate)
        return {"ok": True, "score": max(0.0, min(1.0, (scores["ovrl_mos"] - 1.0) / 4.0)), "task": "synthesis",
                "metrics": scores, "latency_ms": latency,
                "ttft_ms": None if first is None else (first - began) * 1000.0,
                "audio_s": len(audio) / rate, "cost": _tts_cost(self.router, model, item.text)}


def _call_fields(out: dict[str, Any]) -> dict[str, Any]:
    return {k: out[k] for k in ("latency_ms", "ttft_ms", "tokens_in", "tokens_out", "cost")}


def _tts_cost(router: Any, model: str, text: str) -> float | None:
    price = router.catalog.entry(model).price
    return None if price is None else price.cost(len(text))


def summarise(capsule: Capsule, model: str, items: list[dict[str, Any]]) -> ModelSummary:
    """Per model: quality (mean item score; 1 - corpus WER for transcription), the metrics' means, latency p50/p95,
    cost per completion, tokens per success."""
    ok = [r for r in items if r.get("ok")]
    metrics: dict[str, float] = {}
    names = sorted({k for r in ok for k in r.get("metrics", {})})
    for name in names:
        values = [r["metrics"][name] for r in ok if name in r.get("metrics", {})]
        metrics[name] = float(np.mean(values))
    if capsule.kind == "transcription":
        refs = [r.get("reference", "") for r in items]
        hyps = [r.get("output", "") for r in items]
        metrics.update(speech_errors(refs, hyps))
        quality = max(0.0, 1.0 - metrics["wer"])
    else:
        quality = float(np.mean([r.get("score", 0.0) for r in items])) if items else 0.0
    latencies = [r["latency_ms"] for r in ok if r.get("latency_ms") is not None]
    if latencies:
        metrics["latency_p50_ms"] = percentile(latencies, 50) or 0.0
        metrics["latency_p95_ms"] = percentile(latencies, 95) or 0.0
    refusals = [r for r in ok if r.get("task") == "refusal"]
    if refusals:
        metrics["refusal_accuracy"] = float(np.mean([r["metrics"]["refusal_correct"] for r in refusals]))
    costs = [r["cost"] for r in ok if r.get("cost") is not None]
    if costs:
        metrics["cost_per_completion"] = float(np.mean(costs))
    successes = [r for r in ok if r.get("score", 0.0) >= 0.5]
    tokens = sum((r.get("tokens_in") or 0) + (r.get("tokens_out") or 0) for r in ok)
    if tokens and capsule.kind in ("text", "code"):
        metrics["tokens_per_success"] = tokens / len(successes) if successes else float(tokens)
    metrics["success_rate"] = len(successes) / len(items) if items else 0.0
    return ModelSummary(model, quality, len(items), len(items) - len(ok), metrics)
