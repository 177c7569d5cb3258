"""Router benchmark: a simulated 10k-turn trace replayed through the router's real call path in virtual
time, static default profile vs auto-selection; selection time; roll-up query time over 1 M telemetry rows
in SQLite.

Quality is measured, not assumed: before each replay the shipped dialogue capsule (its 14 items, 8 times over)
runs over every model through the real capsule runner (`stream_chat(only=model)`), each simulated model
answering an item right with its hidden true quality's probability; the measured quality replaces the
catalogue's prior in the scores and in the personas' quality floors. "Equal quality" is that no selection of
either policy chooses a model below its persona's measured floor (failover alone may reach one).

Run: .venv/bin/python -m benchmarks router

The trace: 5 personas with SLAs, 6 hosted models with their published per-token prices
(router/prices.py: OpenAI and Anthropic pricing pages, Oct/Nov 2024; Mistral Sept 2024; Groq Oct 2024),
log-normal time-to-first-token, failure rates and token rates per model, and an OpenAI outage in the middle
(requests hang, or fail with 503). Every dialogue turn goes through `ModelRouter.stream_chat`: the router's
selection, failover (its first-output deadline cuts a hanging provider), breakers, stickiness and metering;
scheduled re-scoring and probes go through `router.rescore` and the real prober. Only the providers are
simulated: chat adapters registered in the catalogue that sleep and stream as the sampled behaviour says.
The replay runs on an event loop on virtual time (benchmarks/virtual_time.py), with the router's wall clock
and its attempt timer following it, so the hours of traffic take seconds and turns overlap as they would.

Costs are what the router metered (its `slm.metrics` call records): a failed attempt bills nothing (the
provider reported no usage). Auto-selection's costs include its probe calls. Both runs start with the same
hour of telemetry history, ingested through the admin ingest path as if from billing logs.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adapters.errors import AdapterError
from adapters.llm.base import ChatChunk, ChatMessage, ChatModel, ChatRequest, ChatUsage
from benchmarks.virtual_time import VirtualTimeLoop
from router.capsules.capsule import Capsule, shipped_dir
from router.capsules.runner import CapsuleRunner
from router.catalog import Catalog, ModelEntry, Unit
from router.clock import Clock
from router.compose import compose_router
from router.context import CallContext
from router.events import Topic
from router.failover import AllCandidatesFailed
from router.modes import DeploymentMode, make_policies
from router.prices import KNOWN_PRICES
from router.prober import due_probes, probe
from router.profiles import ModelProfile, ProfileSet
from router.roles import Role
from router.router import ModelRouter
from router.selection import Selection
from router.settings import RouterSettings
from router.sticky import StickyChoice
from router.store import RouterStore
from router.store.aggregates import RollupBuckets
from router.store.benchmarks import BenchmarkResults
from router.telemetry import CallRecord, Outcome

SEED = 20250101
TURNS = 10_000
TRACE_HOURS = 6.0
OUTAGE = (0.40, 0.55)  # share of the trace during which the OpenAI models are down
PROBE_INTERVAL_S = 120.0
RESCORE_EVERY_S = 10.0
ROLLUP_ROWS = 1_000_000
GOALS = {"cost_reduction": 0.30, "selection_p99_us": 100.0, "rollup_ms": 50.0}


@dataclass(frozen=True)
class SimModel:
    name: str
    provider: str
    quality: float  # the catalogue's prior on a 0..1 scale (rough public leaderboard ordering)
    true_quality: float  # how often it really answers a capsule item right: what the capsule run measures
    safety: frozenset[str]
    ttft_median_ms: float
    ttft_sigma: float  # log-normal shape: p95 = median * exp(1.645 sigma)
    tokens_per_s: float
    p_error: float


# true_quality differs from the prior where a leaderboard would mislead: mistral-small is weaker on these tasks
# than its prior says, gpt-4o-mini and claude-3-5-haiku stronger
MODELS = [
    SimModel("gpt-4o", "openai", 0.90, 0.92, frozenset({"content_filter"}), 450, 0.35, 80, 0.004),
    SimModel("gpt-4o-mini", "openai", 0.78, 0.86, frozenset({"content_filter"}), 350, 0.35, 110, 0.004),
    SimModel("claude-3-5-sonnet", "anthropic", 0.92, 0.93, frozenset({"content_filter"}), 650, 0.30, 70, 0.006),
    SimModel("claude-3-5-haiku", "anthropic", 0.80, 0.84, frozenset({"content_filter"}), 480, 0.30, 90, 0.006),
    SimModel("mistral-small", "mistral", 0.72, 0.64, frozenset(), 300, 0.40, 100, 0.008),
    SimModel("llama-3.1-8b-instant", "groq", 0.60, 0.58, frozenset(), 180, 0.50, 500, 0.010),
]
CAPSULE_REPEATS = 8  # the shipped dialogue capsule's 14 items, 8 times over: each model's quality within ~0.03
STATIC_ORDER = (
    "gpt-4o",
    "claude-3-5-sonnet",
    "gpt-4o-mini",
    "claude-3-5-haiku",
    "mistral-small",
    "llama-3.1-8b-instant",
)


@dataclass(frozen=True)
class Persona:
    name: str
    share: float
    sla: dict
    tokens: tuple[int, int]  # typical (input, output) per turn


PERSONAS = [
    Persona("concierge", 0.20, {"latency_p95_ms": 1300, "min_success_rate": 0.97, "min_quality": 0.85}, (1500, 150)),
    Persona("support", 0.25, {"latency_p95_ms": 1100, "min_success_rate": 0.97, "min_quality": 0.75}, (1200, 120)),
    Persona("sales", 0.20, {"latency_p95_ms": 750, "min_success_rate": 0.97, "min_quality": 0.70}, (1000, 100)),
    Persona(
        "kids-tutor",
        0.15,
        {"latency_p95_ms": 1100, "min_success_rate": 0.97, "min_quality": 0.75, "safety": ["content_filter"]},
        (800, 80),
    ),
    Persona("ops-bot", 0.20, {"latency_p95_ms": 1500, "min_success_rate": 0.95}, (1500, 200)),
]


@dataclass(frozen=True)
class Turn:
    ts: float
    conversation: str
    persona: Persona
    tenant: str
    units_in: int
    units_out: int


def make_trace(start: float, rng: random.Random) -> list[Turn]:
    """Conversations arrive as a Poisson process; each has a persona and ~8 turns 10-40 s apart."""
    span = TRACE_HOURS * 3600
    turns: list[Turn] = []
    t, n = start, 0
    weights = [p.share for p in PERSONAS]
    while len(turns) < TURNS * 1.2 and t < start + span:
        t += rng.expovariate(TURNS * 1.25 / 7.5 / span)
        persona = rng.choices(PERSONAS, weights)[0]
        tenant = f"tenant-{rng.randrange(20)}"
        conv_t = t
        for _ in range(1 + min(40, int(rng.expovariate(1 / 7)))):
            tin = int(persona.tokens[0] * rng.uniform(0.6, 1.4))
            tout = int(persona.tokens[1] * rng.uniform(0.5, 1.5))
            turns.append(Turn(conv_t, f"conv-{n}", persona, tenant, tin, tout))
            conv_t += rng.uniform(10, 40)
        n += 1
    turns.sort(key=lambda x: x.ts)
    return turns[:TURNS]


@dataclass(frozen=True)
class Behaviour:
    """What a provider does with one call: hang (never answers), fail after `after_s`, or start answering
    after `after_s` (time to first token) and stream at the model's token rate."""

    kind: Literal["hang", "error", "ok"]
    after_s: float = 0.0
    error: str = ""


class SimulatedProviders:
    """Samples what each model's provider does for a call at a given (simulated) time."""

    def __init__(self, rng: random.Random, outage: tuple[float, float], clock: Clock) -> None:
        self.rng = rng
        self.outage = outage
        self.clock = clock
        self.by_name = {m.name: m for m in MODELS}

    def sample(self, model: str, ts: float) -> Behaviour:
        m = self.by_name[model]
        rng = self.rng
        if m.provider == "openai" and self.outage[0] <= ts < self.outage[1]:
            if rng.random() < 0.7:
                return Behaviour("hang")
            return Behaviour("error", rng.uniform(0.080, 0.250), "503 Service Unavailable")
        if rng.random() < m.p_error:
            return Behaviour("error", rng.uniform(0.100, 0.600), "500 Internal Server Error")
        return Behaviour("ok", m.ttft_median_ms / 1000 * math.exp(rng.gauss(0, m.ttft_sigma)))


TOKENS_IN, TOKENS_OUT = "sim.tokens_in", "sim.tokens_out"  # request metadata: the turn's prompt and reply sizes
CHUNK_TOKENS = 16  # tokens per streamed chunk after the first


def bench_capsule() -> tuple[Capsule, dict[str, tuple[str, str]]]:
    """The shipped dialogue capsule, its items repeated, and for each prompt a right and a wrong reply (what a
    simulated model says when it knows, and when it does not)."""
    base = Capsule.load(shipped_dir() / "dialogue-en.json")
    data = base.to_dict()
    items, replies = [], {}
    for k in range(CAPSULE_REPEATS):
        for item in base.items:
            prompt = f"{item.prompt} (#{k})"
            items.append({**item.model_dump(mode="json", exclude_defaults=True), "id": f"{item.id}-{k}",
                          "prompt": prompt})
            if item.task == "refusal":
                yes, no = "I can't help with that.", "Sure, here is how."
                replies[prompt] = (yes, no) if item.refuse else (no, yes)
            elif item.task == "qa":
                replies[prompt] = (" and ".join(item.facts or item.expected[:1]), "I am not sure.")
            else:
                replies[prompt] = (item.expected[0], "I am not sure.")
    return Capsule.from_dict({**data, "name": "dialogue-en-bench", "items": items}), replies


class SimulatedChat(ChatModel):
    """A hosted chat model as the router sees it: the sampled behaviour, acted out in (virtual) time. A capsule
    item it answers right with its true quality's probability."""

    def __init__(self, model: SimModel, providers: SimulatedProviders,
                 replies: dict[str, tuple[str, str]] | None = None) -> None:
        self.name = model.name
        self.tokens_per_s = model.tokens_per_s
        self.true_quality = model.true_quality
        self.providers = providers
        self.replies = replies or {}

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        behaviour = self.providers.sample(self.name, self.providers.clock())
        prompt = request.messages[-1].content
        if request.metadata.get("purpose") == "capsule" and prompt in self.replies:
            await asyncio.sleep(behaviour.after_s)
            right, wrong = self.replies[prompt]
            reply = right if self.providers.rng.random() < self.true_quality else wrong
            yield ChatChunk(text=reply)
            yield ChatChunk(usage=ChatUsage(60, max(1, len(reply) // 4)), finish_reason="stop")
            return
        if behaviour.kind == "hang":
            await asyncio.get_running_loop().create_future()  # never resolved: the caller's deadline ends it
        await asyncio.sleep(behaviour.after_s)
        if behaviour.kind == "error":
            raise AdapterError(f"{self.name}: {behaviour.error}", outcome=Outcome.ERROR.value)
        prompt_chars = sum(len(m.content) for m in request.messages)
        tokens_in = int(request.metadata.get(TOKENS_IN, max(1, math.ceil(prompt_chars / 4))))
        tokens_out = int(request.metadata.get(TOKENS_OUT, request.max_tokens or 100))
        yield ChatChunk(text="tok ")
        sent = 1
        while sent < tokens_out:
            n = min(CHUNK_TOKENS, tokens_out - sent)
            await asyncio.sleep(n / self.tokens_per_s)
            yield ChatChunk(text="tok " * n)
            sent += n
        yield ChatChunk(usage=ChatUsage(tokens_in, tokens_out), finish_reason="stop")


def build_router(
    providers: SimulatedProviders, clock: Clock, monotonic: Callable[[], float], auto: bool,
    replies: dict[str, tuple[str, str]] | None = None,
) -> ModelRouter:
    entries = [
        ModelEntry(
            m.name,
            Role.DIALOGUE,
            m.provider,
            lambda m=m: SimulatedChat(m, providers, replies),
            price=KNOWN_PRICES[m.name],
            adapter="simulated",
            quality=m.quality,
            safety=m.safety,
            expected_first_output_ms=m.ttft_median_ms,
        )
        for m in MODELS
    ]
    settings = RouterSettings(
        mode=DeploymentMode.PRODUCTION, auto_selection=auto, probe_interval_s=PROBE_INTERVAL_S if auto else None
    )
    profiles = ProfileSet({Role.DIALOGUE: ModelProfile(Role.DIALOGUE, STATIC_ORDER[0], STATIC_ORDER[1:])})
    policies = make_policies(
        profiles, selection_weights=settings.selection_weights, stale_after_s=settings.stale_after_s
    )
    return compose_router(Catalog(entries), policies=policies, settings=settings, clock=clock, monotonic=monotonic)


@dataclass
class Result:
    policy: str
    cost: float = 0.0
    probe_cost: float = 0.0
    turns: int = 0
    ok: int = 0
    sla_misses: int = 0
    fallbacks: int = 0
    deadline_cuts: int = 0  # attempts the router abandoned at the first-output deadline
    probes: int = 0
    selection_ns: list[int] = field(default_factory=list)  # wall clock
    selection_cpu_ns: list[int] = field(default_factory=list)  # this thread's CPU time: immune to other processes
    rescore_ns: list[int] = field(default_factory=list)
    perceived: dict[str, list[float]] = field(default_factory=dict)
    chosen: dict[str, int] = field(default_factory=dict)
    replay_s: float = 0.0  # real time the replay took
    measured: dict[str, float] = field(default_factory=dict)  # capsule-measured quality per model
    capsule_cost: float = 0.0  # what measuring cost (every model over the capsule)
    served_quality: list[float] = field(default_factory=list)  # measured quality of the model that answered
    below_floor: int = 0  # answered turns served by a model under the persona's quality floor (measured)
    chosen_below_floor: int = 0  # selections that chose such a model (failover may still reach one)

    @property
    def cost_per_completion(self) -> float:
        return (self.cost + self.probe_cost) / max(1, self.ok)


def history(providers: SimulatedProviders, deadline_s: float, start: float, rng: random.Random) -> list[dict]:
    """The hour before the trace, as billing logs would have it: ~150 calls per model."""
    items = []
    for m in MODELS:
        for _ in range(150):
            ts = start - rng.uniform(1, 3600)
            b = providers.sample(m.name, ts)
            item: dict[str, Any] = {"ts": ts, "role": Role.DIALOGUE.value, "model": m.name, "units_in": 1200}
            if b.kind == "ok" and b.after_s <= deadline_s:
                item.update(
                    outcome=Outcome.OK.value,
                    ttft_ms=b.after_s * 1000,
                    latency_ms=(b.after_s + 100 / m.tokens_per_s) * 1000,
                    units_out=100,
                )
            elif b.kind == "error":
                item.update(outcome=Outcome.ERROR.value, latency_ms=b.after_s * 1000)
            else:
                item.update(outcome=Outcome.TIMEOUT.value, latency_ms=deadline_s * 1000)
            items.append(item)
    return items


def time_selections(router: ModelRouter, result: Result) -> None:
    """Time `router.select` where the call path calls it (stream_chat calls self.select): wrapped on the instance."""
    select = router.select

    def timed(role: Role, ctx: CallContext, *, dry_run: bool = False) -> Selection:
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        selection = select(role, ctx, dry_run=dry_run)
        result.selection_ns.append(time.perf_counter_ns() - t0)
        result.selection_cpu_ns.append(time.thread_time_ns() - c0)
        result.chosen[selection.chosen] = result.chosen.get(selection.chosen, 0) + 1
        sla = router.state.persona(ctx.persona)
        if sla is not None and sla.min_quality is not None and result.measured.get(selection.chosen, 1.0) < \
                sla.min_quality:
            result.chosen_below_floor += 1
        return selection

    router.select = timed  # type: ignore[method-assign]


async def rescore_every(router: ModelRouter, result: Result) -> None:
    """The scheduled re-scoring, timed."""
    while True:
        await asyncio.sleep(RESCORE_EVERY_S)
        t0 = time.perf_counter_ns()
        router.rescore()
        result.rescore_ns.append(time.perf_counter_ns() - t0)


async def probe_every(router: ModelRouter, monotonic: Callable[[], float]) -> None:
    """The router's probe schedule (RouterLifecycle._probe_loop), through the real prober, timed on `monotonic`."""
    while True:
        await asyncio.sleep(max(1.0, PROBE_INTERVAL_S / 4))
        for role, model in due_probes(router, PROBE_INTERVAL_S):
            attempt = await probe(router, role, model, monotonic=monotonic)
            if attempt is None:
                continue
            price = router.catalog.entry(model).price
            router.record(
                CallRecord(
                    ts=attempt.started_wall,
                    role=role,
                    model=model,
                    outcome=attempt.outcome,
                    latency_ms=attempt.latency_ms,
                    ttft_ms=attempt.ttft_ms,
                    units_in=attempt.units_in,
                    units_out=attempt.units_out,
                    cost=None if price is None else price.cost(attempt.units_in, attempt.units_out),
                    tenant="router-probe",
                    source="probe",
                    error=attempt.error,
                )
            )


async def replay(auto: bool, trace: list[Turn], start: float) -> Result:
    """Replay the trace through `stream_chat`, one task per turn started at its time; run on a VirtualTimeLoop."""
    began = time.perf_counter()
    loop = asyncio.get_running_loop()
    origin = loop.time()

    def clock() -> float:
        return start + (loop.time() - origin)

    span = trace[-1].ts - start
    providers = SimulatedProviders(
        random.Random(SEED + 1), (start + OUTAGE[0] * span, start + OUTAGE[1] * span), clock
    )
    capsule, replies = bench_capsule()
    router = build_router(providers, clock, loop.time, auto, replies)
    for p in PERSONAS:
        await router.admin.put_persona(p.name, p.sla, "bench")
    # measured quality: the capsule over every model through the real runner (stream_chat, only=model) before
    # the trace; it replaces the catalogue priors in the scores and the personas' quality floors
    report = await CapsuleRunner(router, BenchmarkResults.in_memory()).run(
        capsule, role=Role.DIALOGUE, models=[m.name for m in MODELS])
    measured = {m: s.quality for m, s in report.summaries.items()}
    deadline_s = router.state.timeouts(Role.DIALOGUE).first_output_s
    await router.admin.ingest_telemetry(history(providers, deadline_s, start, random.Random(SEED + 2)), "bench")
    router.rescore(publish=False)

    result = Result("auto-selection" if auto else "static default", measured=measured)
    result.capsule_cost = sum(s.metrics.get("cost_per_completion", 0.0) * s.items for s in report.summaries.values())
    time_selections(router, result)
    metering = router.bus.subscribe({Topic.SLM_METRICS}, maxsize=0)  # every call record, unbounded

    def on_sticky(choice: StickyChoice) -> None:  # the router's _on_moved: a model other than the chosen answered
        if choice.reason == "failover":
            result.fallbacks += 1

    router.sticky.on_put = on_sticky

    async def serve(turn: Turn) -> None:
        ctx = CallContext(tenant=turn.tenant, persona=turn.persona.name, conversation_id=turn.conversation)
        request = ChatRequest(
            messages=(ChatMessage("user", "What are your opening hours on Sunday?"),),
            metadata={TOKENS_IN: str(turn.units_in), TOKENS_OUT: str(turn.units_out)},
        )
        t0 = loop.time()
        answered: float | None = None
        try:
            async for chunk in router.stream_chat(Role.DIALOGUE, request, ctx):
                if answered is None and chunk.text:
                    answered = (loop.time() - t0) * 1000
        except AllCandidatesFailed:  # including StreamInterrupted: the turn was not answered
            answered = None
        result.turns += 1
        if answered is None:
            result.sla_misses += 1
            return
        result.ok += 1
        result.perceived.setdefault(turn.persona.name, []).append(answered)
        if answered > turn.persona.sla["latency_p95_ms"]:
            result.sla_misses += 1

    background = [asyncio.create_task(rescore_every(router, result))]
    if auto:
        background.append(asyncio.create_task(probe_every(router, loop.time)))
    turns = []
    for turn in trace:
        if turn.ts > clock():
            await asyncio.sleep(turn.ts - clock())
        turns.append(asyncio.create_task(serve(turn)))
    await asyncio.gather(*turns)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)

    while not metering.queue.empty():
        rec = metering.queue.get_nowait().payload
        if rec["source"] == "live":
            result.cost += rec["cost"] or 0.0
            result.deadline_cuts += rec["outcome"] == Outcome.TIMEOUT.value
            if rec["outcome"] == Outcome.OK.value:
                q = measured[rec["model"]]
                result.served_quality.append(q)
                floor = router.state.personas[rec["persona"]].min_quality
                result.below_floor += floor is not None and q < floor
        elif rec["source"] == "probe":
            result.probe_cost += rec["cost"] or 0.0
            result.probes += 1
    metering.close()
    result.replay_s = time.perf_counter() - began
    return result


def in_virtual_time(coro: Coroutine[Any, Any, Result]) -> Result:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)


def _pct(values: list[int] | list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))])


def rollup_benchmark() -> dict[str, float]:
    """1 M call records over 24 h in SQLite, written through the store's telemetry path; then roll-ups."""
    rng = np.random.default_rng(SEED)
    now = 1_750_000_000.0
    with tempfile.TemporaryDirectory() as tmp:
        store = RouterStore(f"sqlite:///{Path(tmp) / 'bench.db'}", writer_id="bench")
        store.migrate()
        names = [m.name for m in MODELS]
        t0 = time.perf_counter()
        chunk = 100_000
        buckets = RollupBuckets()
        for offset in range(0, ROLLUP_ROWS, chunk):
            n = min(chunk, ROLLUP_ROWS - offset)
            ts = np.sort(now - 86400 + 60 + rng.random(n) * (86400 - 60))  # inside the 24 h window
            model_idx = rng.integers(0, len(names), n)
            ttft = rng.lognormal(math.log(400), 0.4, n)
            ok = rng.random(n) > 0.02
            tin = rng.integers(600, 2000, n)
            tout = rng.integers(40, 250, n)
            records = []
            for i in range(n):
                name = names[model_idx[i]]
                good = bool(ok[i])
                records.append(
                    CallRecord(
                        ts=float(ts[i]),
                        role=Role.DIALOGUE,
                        model=name,
                        outcome=Outcome.OK if good else Outcome.ERROR,
                        latency_ms=float(ttft[i] * 3),
                        ttft_ms=float(ttft[i]) if good else None,
                        units_in=float(tin[i]),
                        units_out=float(tout[i]),
                        unit=Unit.TOKENS_1K,
                        cost=KNOWN_PRICES[name].cost(float(tin[i]), float(tout[i])),
                    )
                )
                buckets.add(records[-1])
            store.write_telemetry(records, [])
        store.write_telemetry([], buckets.take(now, everything=True))
        write_s = time.perf_counter() - t0
        assert store.count_call_records() == ROLLUP_ROWS
        timings: dict[str, list[float]] = {}
        for window in ("5m", "1h", "24h"):
            for _ in range(15):
                t1 = time.perf_counter()
                rollups = store.rollups(window, now, Role.DIALOGUE)
                timings.setdefault(window, []).append((time.perf_counter() - t1) * 1000)
            if window == "24h":
                assert sum(r.calls for r in rollups) == ROLLUP_ROWS
        import sqlalchemy as sa

        t2 = time.perf_counter()
        with store.engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT model, count(*), avg(latency_ms), sum(cost) FROM router_call_records "
                    "WHERE ts >= :t GROUP BY model"
                ),
                {"t": now - 86400},
            ).all()
        raw_ms = (time.perf_counter() - t2) * 1000
        store.dispose()
    out = {f"rollup_{w}_ms_p50": statistics.median(v) for w, v in timings.items()}
    out.update({f"rollup_{w}_ms_max": max(v) for w, v in timings.items()})
    out["write_rows_per_s"] = ROLLUP_ROWS / write_s
    out["raw_sql_24h_ms"] = raw_ms
    return out


def main() -> None:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    start = 1_750_000_000.0
    trace = make_trace(start, random.Random(SEED))
    print(
        f"trace: {len(trace)} turns, {len({t.conversation for t in trace})} conversations, "
        f"{(trace[-1].ts - trace[0].ts) / 3600:.1f} h simulated, {len(MODELS)} models, {len(PERSONAS)} personas, "
        f"OpenAI outage {OUTAGE[0]:.0%}-{OUTAGE[1]:.0%} of the trace"
    )
    static = in_virtual_time(replay(False, trace, start))
    auto = in_virtual_time(replay(True, trace, start))
    print(f"\n{'':28}{'static default':>16}{'auto-selection':>16}")
    rows = [
        ("cost per completion (USD)", f"{static.cost_per_completion:.6f}", f"{auto.cost_per_completion:.6f}"),
        ("  of which probes (USD)", f"{static.probe_cost:.4f}", f"{auto.probe_cost:.4f}"),
        ("success rate", f"{static.ok / static.turns:.4%}", f"{auto.ok / auto.turns:.4%}"),
        ("SLA misses (turns)", f"{static.sla_misses}", f"{auto.sla_misses}"),
        ("failovers that answered", f"{static.fallbacks}", f"{auto.fallbacks}"),
        ("attempts cut at the deadline", f"{static.deadline_cuts}", f"{auto.deadline_cuts}"),
        ("probe calls", f"{static.probes}", f"{auto.probes}"),
        ("served quality (measured)", f"{statistics.fmean(static.served_quality):.3f}",
         f"{statistics.fmean(auto.served_quality):.3f}"),
        ("chosen under a quality floor", f"{static.chosen_below_floor}", f"{auto.chosen_below_floor}"),
        ("  served there by failover", f"{static.below_floor}", f"{auto.below_floor}"),
        (
            "selection p50 (us)",
            f"{_pct(static.selection_ns, 0.5) / 1000:.1f}",
            f"{_pct(auto.selection_ns, 0.5) / 1000:.1f}",
        ),
        (
            "selection p99 (us)",
            f"{_pct(static.selection_ns, 0.99) / 1000:.1f}",
            f"{_pct(auto.selection_ns, 0.99) / 1000:.1f}",
        ),
        (
            "selection p99, CPU time (us)",
            f"{_pct(static.selection_cpu_ns, 0.99) / 1000:.1f}",
            f"{_pct(auto.selection_cpu_ns, 0.99) / 1000:.1f}",
        ),
        (
            "re-scoring p99 (us, scheduled)",
            f"{_pct(static.rescore_ns, 0.99) / 1000:.0f}",
            f"{_pct(auto.rescore_ns, 0.99) / 1000:.0f}",
        ),
    ]
    for label, a, b in rows:
        print(f"{label:28}{a:>16}{b:>16}")
    print("\nper persona: perceived time to first token p95 (ms) vs SLA ceiling")
    for p in PERSONAS:
        s95 = _pct(static.perceived.get(p.name, []), 0.95)
        a95 = _pct(auto.perceived.get(p.name, []), 0.95)
        print(f"  {p.name:12} ceiling {p.sla['latency_p95_ms']:>5}   static {s95:7.0f}   auto {a95:7.0f}")
    print("capsule-measured quality (prior -> measured): " + ", ".join(
        f"{m.name} {m.quality:.2f}->{auto.measured[m.name]:.2f}" for m in MODELS)
        + f"; measuring cost {auto.capsule_cost:.4f} USD")
    share = {m: f"{n / auto.turns:.0%}" for m, n in sorted(auto.chosen.items(), key=lambda kv: -kv[1])}
    print(f"auto-selection's choices: {share}")
    print(
        f"replay through stream_chat in virtual time: static {static.replay_s:.1f} s, auto {auto.replay_s:.1f} s "
        f"of real time for {(trace[-1].ts - start) / 3600:.1f} h simulated each"
    )

    roll = rollup_benchmark()
    print(
        f"\nroll-ups over {ROLLUP_ROWS:,} telemetry rows in SQLite (written at {roll['write_rows_per_s']:,.0f} rows/s "
        f"through the store's telemetry path):"
    )
    for w in ("5m", "1h", "24h"):
        print(f"  {w:>4}: p50 {roll[f'rollup_{w}_ms_p50']:.1f} ms, max {roll[f'rollup_{w}_ms_max']:.1f} ms")
    print(
        f"  (for comparison, one raw-SQL GROUP BY over the 24 h of call rows: {roll['raw_sql_24h_ms']:.0f} ms, "
        "no percentiles)"
    )

    reduction = 1 - auto.cost_per_completion / static.cost_per_completion
    sel_p99 = _pct(auto.selection_ns, 0.99) / 1000
    sel_cpu_p99 = _pct(auto.selection_cpu_ns, 0.99) / 1000
    roll_worst = max(roll[f"rollup_{w}_ms_p50"] for w in ("5m", "1h", "24h"))
    print("\ngoal                                   measured      goal     met")
    checks = [
        (
            "cost per completion reduction",
            f"{reduction:.1%}",
            f">= {GOALS['cost_reduction']:.0%}",
            reduction >= GOALS["cost_reduction"],
        ),
        (
            "success rate (auto vs static)",
            f"{auto.ok / auto.turns - static.ok / static.turns:+.2%}",
            ">= -0.10%",
            auto.ok / auto.turns >= static.ok / static.turns - 0.001,
        ),
        (
            "SLA misses (auto - static)",
            f"{auto.sla_misses - static.sla_misses:+d}",
            "<= 0",
            auto.sla_misses <= static.sla_misses,
        ),
        (
            "chosen under a measured quality floor",
            f"{auto.chosen_below_floor}",
            f"<= {static.chosen_below_floor}",
            auto.chosen_below_floor <= static.chosen_below_floor,
        ),
        (
            "selection p99 (wall clock)",
            f"{sel_p99:.1f} us",
            f"<= {GOALS['selection_p99_us']:.0f} us",
            sel_p99 <= GOALS["selection_p99_us"],
        ),
        (
            "selection p99 (thread CPU time)",
            f"{sel_cpu_p99:.1f} us",
            f"<= {GOALS['selection_p99_us']:.0f} us",
            sel_cpu_p99 <= GOALS["selection_p99_us"],
        ),
        (
            "roll-up query (slowest window, p50)",
            f"{roll_worst:.1f} ms",
            f"<= {GOALS['rollup_ms']:.0f} ms",
            roll_worst <= GOALS["rollup_ms"],
        ),
    ]
    for label, measured, goal, met in checks:
        print(f"  {label:36}{measured:>10}{goal:>12}{'yes' if met else 'NO':>7}")
    load = os.getloadavg()[0]
    print(
        f"\n(total {time.perf_counter() - started:.0f} s; load average {load_before:.2f} -> {load:.2f} on "
        f"{os.cpu_count()} cores: wall-clock tails include time other processes took the CPU)"
    )


if __name__ == "__main__":
    main()
