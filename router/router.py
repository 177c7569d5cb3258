"""The model router: every model call goes through here, tagged with its role.

`ModelRouter` is also the facade the admin API drives: it holds the routing state, the store, the
event bus, telemetry, breakers and sticky choices. It owns the tasks it starts (write-behind writers,
scheduled re-scoring, probes, following other processes' changes) and stops them in aclose().
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import replace
from operator import methodcaller
from typing import Any

import numpy as np

from adapters.asr.base import SpeechRecognizer
from adapters.errors import AdapterError
from adapters.llm.base import ChatChunk, ChatMessage, ChatRequest
from router.admin.auth import AdminKeys, hash_key
from router.admin.operations import RouterAdmin
from router.audit import MemoryAuditLog
from router.breaker import BreakerBoard, BreakerState
from router.catalog import Catalog, role_unit
from router.clock import Clock, system_clock
from router.context import CallContext
from router.events import EventBus, LazyPayload, Topic
from router.failover import (
    AllCandidatesFailed,
    Attempt,
    FailoverRunner,
    StreamInterrupted,
    StreamPlan,
)
from router.metered_asr import MeteredRecognizer
from router.modes import DeploymentMode, ModePolicy, make_policies
from router.overrides import OverrideTable
from router.profiles import ProfileSet
from router.roles import Role
from router.scoring import RoleScores, candidate_stats, score
from router.selection import Selection, Selector
from router.settings import RouterSettings
from router.state import RoutingState
from router.sticky import StickyChoice, StickyMap
from router.store import RouterStore
from router.store.aggregates import RollupBuckets
from router.store.notify import attach_bus
from router.store.writer import BatchWriter
from router.telemetry import CallRecord, Outcome, Rollup, TelemetryAggregator

log = logging.getLogger(__name__)

__all__ = ["AllCandidatesFailed", "ModelRouter", "StreamInterrupted"]

_CONFIG_TOPICS = {Topic.PROFILE_UPDATED, Topic.MODE_CHANGED, Topic.FLAGS_CHANGED}
PROBE_REQUEST = ChatRequest(
    messages=(ChatMessage("user", "Reply with the single word OK."),),
    temperature=0.0,
    max_tokens=1,
    metadata={"purpose": "router-probe"},
)


class ModelRouter:
    def __init__(
        self,
        catalog: Catalog,
        profiles: ProfileSet | None = None,
        bus: EventBus | None = None,
        *,
        policies: dict[DeploymentMode, ModePolicy] | None = None,
        settings: RouterSettings | None = None,
        store: RouterStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or RouterSettings()
        self.clock: Clock = clock or system_clock
        self.catalog = catalog
        self.bus = bus or EventBus(clock=self.clock)
        if policies is None:
            if profiles is None:
                raise ValueError("ModelRouter needs profiles or per-mode policies")
            policies = make_policies(
                profiles, selection_weights=self.settings.selection_weights, stale_after_s=self.settings.stale_after_s
            )
        self.state = RoutingState(policies, self.settings.mode, self.settings.auto_selection)
        self.telemetry = TelemetryAggregator()
        self.breakers = BreakerBoard(self.state.policy.breaker, self.clock, self._on_breaker_change)
        self.sticky = StickyMap(on_put=self._persist_sticky)
        self._scores: dict[Role, RoleScores] = {}
        self.selector = Selector(
            catalog,
            self.state,
            self.telemetry,
            self.breakers,
            self.sticky,
            self.clock,
            self.scores_for,
            self._scores.get,
        )
        self.admin_keys = AdminKeys()
        if self.settings.admin_key:
            self.admin_keys.add("bootstrap", hash_key(self.settings.admin_key))
        self.memory_audit = MemoryAuditLog()
        self.store = store
        self._owns_store = False
        self._owns_bus_attachment = False
        self._telemetry_writer: BatchWriter[CallRecord] | None = None
        self._sticky_writer: BatchWriter[StickyChoice] | None = None
        self._buckets = RollupBuckets()  # touched only by the telemetry writer's flushes
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False
        self._failover = FailoverRunner(
            self.breakers,
            wall_clock=self.clock,
            record=self._record_attempt,
            on_fallback=self._on_fallback,
            on_moved=self._on_moved,
        )
        self.admin = RouterAdmin(self)

    # -- configuration views --------------------------------------------------------------------
    @property
    def profiles(self) -> ProfileSet:
        """The current mode's profiles (stored ones over the mode defaults)."""
        return self.state.profile_set()

    @property
    def overrides(self) -> OverrideTable:
        return self.state.overrides

    @property
    def mode(self) -> DeploymentMode:
        return self.state.mode

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, *, warm_speech: bool = True) -> None:
        """Open the store (migrating it), load persisted configuration and roll-ups, start the owned
        tasks, and (unless told not to) warm the speech engines so the first turn pays no loading cost."""
        if self.started:
            return
        if self.store is None and self.settings.database_url:
            self.store = RouterStore(self.settings.database_url, writer_id=self.bus.instance_id)
            self._owns_store = True
        store = self.store
        if store is not None:
            await asyncio.to_thread(store.migrate)
            await self.reload_config()
            await self._rehydrate_telemetry()
            if self.settings.admin_key:
                await asyncio.to_thread(
                    store.ensure_admin_key, "bootstrap", hash_key(self.settings.admin_key), self.clock()
                )
            for name, key_hash in await asyncio.to_thread(store.admin_keys):
                self.admin_keys.add(name, key_hash)
            if not self.bus.attached:
                await attach_bus(self.bus, store)
                self._owns_bus_attachment = True
            self._telemetry_writer = BatchWriter(
                self._write_telemetry, name="telemetry", interval_s=self.settings.flush_interval_s
            )
            self._sticky_writer = BatchWriter(
                lambda batch, _final: store.put_sticky(batch), name="sticky", interval_s=self.settings.flush_interval_s
            )
            self._telemetry_writer.start()
            self._sticky_writer.start()
            self._spawn(self._follow_remote_changes(), "router-follow")
            self._spawn(self._purge_loop(), "router-purge")
        self.started = True
        self._spawn(self._rescore_loop(), "router-rescore")
        if self.settings.probe_interval_s:
            self._spawn(self._probe_loop(), "router-probe")
        for role in (Role.SPEECH_RECOGNITION, Role.SPEECH_SYNTHESIS) if warm_speech else ():
            if role not in self.state.policy.profiles.profiles:
                continue
            for name in self.state.profile(role).candidates:
                try:
                    await self.catalog.adapter(name).start()
                except AdapterError as exc:
                    log.warning("model %s unavailable at start: %s", name, exc)

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def flush(self) -> None:
        """Write everything pending (telemetry, sticky choices, events) now."""
        for writer in (self._telemetry_writer, self._sticky_writer):
            if writer is not None:
                await writer.flush()
        await self.bus.flush()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("router task %s failed", task.get_name())
        self._tasks.clear()
        for writer in (self._telemetry_writer, self._sticky_writer):
            if writer is not None:
                await writer.aclose()
        self._telemetry_writer = self._sticky_writer = None
        if self._owns_bus_attachment:
            await self.bus.aclose()
            self._owns_bus_attachment = False
        if self._owns_store and self.store is not None:
            self.store.dispose()
            self.store = None
            self._owns_store = False
        self.started = False
        for adapter in self.catalog.built():
            try:
                await adapter.aclose()
            except Exception:  # closing must reach every adapter
                log.exception("closing adapter %r failed", adapter)

    # -- persisted state ------------------------------------------------------------------------
    async def reload_config(self) -> None:
        """Adopt the stored configuration (at start, and when another process changed it)."""
        if self.store is None:
            return
        cfg = await asyncio.to_thread(self.store.load_config)
        state = self.state
        mode = cfg.settings.get("mode")
        if mode is not None:
            state.mode = DeploymentMode(mode)
        auto = cfg.settings.get("auto_selection")
        if auto is not None:
            state.auto_selection = bool(auto)
        modes = {m.value for m in DeploymentMode}
        state.custom_profiles = {DeploymentMode(m): p for m, p in cfg.profiles.items() if m in modes}
        state.overrides = OverrideTable(cfg.overrides)
        state.personas = dict(cfg.personas)
        state.version = int(cfg.settings.get("config_version") or 0)
        self.breakers.reconfigure(state.policy.breaker)
        self._scores.clear()
        self.rescore(publish=False)

    async def _rehydrate_telemetry(self) -> None:
        assert self.store is not None
        for ring, role, model, start, _unit, scalars, lat, ttft, last_ts in await asyncio.to_thread(
            self.store.rehydration_buckets, self.clock()
        ):
            try:
                r = Role(role)
            except ValueError:
                continue
            self.telemetry.add_bucket(r, model, role_unit(r), start, scalars, lat, ttft, last_ts, ring=ring)

    def _write_telemetry(self, batch: list[CallRecord], final: bool) -> None:
        assert self.store is not None
        for rec in batch:
            self._buckets.add(rec)
        self.store.write_telemetry(batch, self._buckets.take(self.clock(), everything=final))

    def _persist_sticky(self, choice: StickyChoice) -> None:
        if self._sticky_writer is not None:
            self._sticky_writer.put(choice)

    async def _load_sticky(self, ctx: CallContext) -> None:
        """A conversation this process has not seen may have been served elsewhere (or before a restart)."""
        conv = ctx.conversation_id
        if not conv or self.store is None or not self.started or self.sticky.known(conv):
            return
        try:
            choices = await asyncio.to_thread(self.store.get_sticky, conv)
        except Exception:
            log.exception("loading conversation %s's models failed; selecting afresh", conv)
            choices = []
        self.sticky.load(conv, choices)

    # -- telemetry, scores, selection -----------------------------------------------------------
    def record(self, rec: CallRecord, *, persist: bool = True, publish: bool = True) -> None:
        self.telemetry.record(rec)
        if persist and self._telemetry_writer is not None:
            self._telemetry_writer.put(rec)
        if publish:
            self.bus.publish(Topic.SLM_METRICS, LazyPayload(rec.to_dict))

    def rollups(self, role: Role, window: str) -> list[Rollup]:
        now = self.clock()
        models = {m for r, m in self.telemetry.keys(role)} | {e.name for e in self.catalog.for_role(role)}
        return [self.telemetry.rollup(role, m, window, now) for m in sorted(models)]

    def scores_for(self, role: Role) -> RoleScores:
        scores = self._scores.get(role)
        return scores if scores is not None else self._compute_scores(role)

    def _compute_scores(self, role: Role) -> RoleScores:
        now = self.clock()
        policy = self.state.policy
        entries = [e for e in self.catalog.for_role(role) if not e.last_resort]
        stats = [candidate_stats(role, e, self.telemetry, now, policy.min_samples) for e in entries]
        breakdowns = score(stats, policy.score_weights, policy.selection_weights)
        result = RoleScores(role, now, policy.score_weights, policy.selection_weights, {b.model: b for b in breakdowns})
        self._scores[role] = result
        return result

    def rescore(self, role: Role | None = None, *, publish: bool = True) -> list[RoleScores]:
        """Recompute scores (all roles of the mode, or one) and publish `model.profile.scored` per role."""
        roles = [role] if role is not None else self.state.policy.profiles.roles()
        out = []
        for r in roles:
            result = self._compute_scores(r)
            self.selector.warm(r)
            out.append(result)
            if publish:
                self.bus.publish(Topic.PROFILE_SCORED, {**result.to_dict(), "mode": self.state.mode.value})
        return out

    def select(self, role: Role, ctx: CallContext, *, dry_run: bool = False) -> Selection:
        """Decide the model (and failover order) for a call; publishes `router.selection` unless dry_run."""
        selection = self.selector.select(role, ctx, dry_run=dry_run)
        if not dry_run:
            self.bus.publish(Topic.SELECTION, LazyPayload(selection.to_payload))
        return selection

    def explain(self, role: Role, ctx: CallContext) -> Selection:
        """A dry run: the full decision without recording, publishing or sticking anything."""
        return self.selector.select(role, ctx, dry_run=True)

    def candidates(self, role: Role, ctx: CallContext) -> tuple[str, ...]:
        return self.selector.select(role, ctx, dry_run=True).order

    # -- calls ----------------------------------------------------------------------------------
    async def stream_chat(self, role: Role, request: ChatRequest, ctx: CallContext) -> AsyncIterator[ChatChunk]:
        """Stream from the first candidate that answers in time; fail over only before any text was yielded.

        Raises AllCandidatesFailed when every candidate failed, StreamInterrupted (a subclass) when the
        stream broke after text had been yielded.
        """
        await self._load_sticky(ctx)
        selection = self.select(role, ctx)
        profile = self.state.profile(role)
        if request.temperature is None and profile.temperature is not None:
            request = replace(request, temperature=profile.temperature)
        if request.max_tokens is None and profile.max_tokens is not None:
            request = replace(request, max_tokens=profile.max_tokens)
        prompt_chars = sum(len(m.content) for m in request.messages)
        final_request = request

        def observe(attempt: Attempt, chunk: ChatChunk) -> None:
            attempt.output_chars += len(chunk.text)
            if chunk.usage is not None:
                attempt.usage_reported = True
                attempt.units_in = float(chunk.usage.input_tokens)
                attempt.units_out = float(chunk.usage.output_tokens)

        def settle(attempt: Attempt) -> None:
            if not attempt.usage_reported and (attempt.output_chars or attempt.outcome is Outcome.OK):
                attempt.units_in = round(prompt_chars / 4)
                attempt.units_out = round(attempt.output_chars / 4)
                attempt.units_estimated = True

        plan: StreamPlan[ChatChunk] = StreamPlan(
            role=role,
            ctx=ctx,
            selection=selection,
            timeouts=self.state.timeouts(role),
            open=lambda model: self.catalog.adapter(model).stream(final_request),
            is_output=lambda chunk: bool(chunk.text),
            observe=observe,
            settle=settle,
        )
        async with aclosing(self._failover.run(plan)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def complete(self, role: Role, request: ChatRequest, ctx: CallContext) -> str:
        """The whole reply as text (tool planning, summaries, ...), through the same failover."""
        parts = [chunk.text async for chunk in self.stream_chat(role, request, ctx)]
        return "".join(parts)

    async def synthesize(
        self, text: str, ctx: CallContext, voice: str | None = None
    ) -> AsyncIterator[tuple[np.ndarray, int]]:
        """Yield (pcm int16, sample rate) blocks; fail over to the next voice engine before first audio."""
        await self._load_sticky(ctx)
        selection = self.select(Role.SPEECH_SYNTHESIS, ctx)

        async def open_tts(model: str) -> AsyncIterator[tuple[np.ndarray, int]]:
            tts = self.catalog.adapter(model)
            async for block in tts.synthesize(text, voice=voice):
                yield block, tts.sample_rate

        def settle(attempt: Attempt) -> None:
            if attempt.outcome is Outcome.OK or attempt.first_output is not None:
                attempt.units_in = float(len(text))

        plan: StreamPlan[tuple[np.ndarray, int]] = StreamPlan(
            role=Role.SPEECH_SYNTHESIS,
            ctx=ctx,
            selection=selection,
            timeouts=self.state.timeouts(Role.SPEECH_SYNTHESIS),
            open=open_tts,
            is_output=lambda item: len(item[0]) > 0,
            observe=lambda _a, _i: None,
            settle=settle,
        )
        async with aclosing(self._failover.run(plan)) as items:
            async for item in items:
                yield item

    def recognizer(self, ctx: CallContext) -> SpeechRecognizer:
        return self.recognizers(ctx)[0]

    def speech_backlog(self) -> dict[str, dict[str, float]]:
        """Seconds of audio queued per worker of each recogniser built so far (admission control, /metrics)."""
        return self._per_recognizer(methodcaller("backlog"))

    def speech_occupancy(self) -> dict[str, dict[str, float]]:
        """Cumulative busy seconds per worker of each recogniser built so far (admission control)."""
        return self._per_recognizer(methodcaller("occupancy"))

    def _per_recognizer(self, reading: Callable[[SpeechRecognizer], dict[str, float]]) -> dict[str, dict[str, float]]:
        return {name: reading(adapter) for name, adapter in self.catalog.built_items()
                if isinstance(adapter, SpeechRecognizer)}

    def recognizers(self, ctx: CallContext) -> list[SpeechRecognizer]:
        """The recognisers to try, in order (ejected ones last), each metered per utterance."""
        selection = self.select(Role.SPEECH_RECOGNITION, ctx)
        healthy = [m for m in selection.order if not self.breakers.is_open(m)]
        ejected = [m for m in selection.order if self.breakers.is_open(m)]

        def report(attempt: Attempt) -> None:
            self._record_attempt(Role.SPEECH_RECOGNITION, ctx, attempt)

        return [
            MeteredRecognizer(self.catalog.adapter(m), m, self.breakers.get(m), report, self.clock)
            for m in healthy + ejected
        ]

    # -- failover hooks -------------------------------------------------------------------------
    def _record_attempt(self, role: Role, ctx: CallContext, attempt: Attempt, source: str = "live") -> None:
        entry = self.catalog.get(attempt.model)
        cost = None
        if entry is not None and entry.price is not None:
            cost = entry.price.cost(attempt.units_in, attempt.units_out)
        self.record(
            CallRecord(
                ts=attempt.started_wall,
                role=role,
                model=attempt.model,
                outcome=attempt.outcome,
                latency_ms=attempt.latency_ms,
                ttft_ms=attempt.ttft_ms,
                units_in=attempt.units_in,
                units_out=attempt.units_out,
                unit=role_unit(role),
                cost=cost,
                tenant=ctx.tenant,
                persona=ctx.persona,
                conversation_id=ctx.conversation_id,
                units_estimated=attempt.units_estimated,
                source=source,
                error=attempt.error,
            )
        )

    def _on_fallback(self, plan: StreamPlan[Any], failed: str, reason: str, next_model: str | None) -> None:
        sel = plan.selection
        moved_lock = sel.locked and failed == sel.chosen
        payload = {
            "role": plan.role.value,
            "failed_model": failed,
            "reason": reason,
            "next_model": next_model,
            "chosen": sel.chosen,
            "selection_source": sel.source,
            "locked_override_moved": moved_lock,
            "conversation_id": plan.ctx.conversation_id,
            "tenant": plan.ctx.tenant,
            "persona": plan.ctx.persona,
        }
        if moved_lock:
            payload["note"] = "failover moved a locked override's model (only failover may)"
        self.bus.publish(Topic.FALLBACK_USED, payload)

    def _on_moved(self, plan: StreamPlan[Any], model: str) -> None:
        conv = plan.ctx.conversation_id
        if conv:
            self.sticky.put(
                StickyChoice(
                    conv,
                    plan.role,
                    model,
                    self.state.version,
                    "failover",
                    self.clock(),
                    plan.ctx.tenant,
                    plan.ctx.persona,
                )
            )

    def _on_breaker_change(self, model: str, before: BreakerState, after: BreakerState, reason: str) -> None:
        self.bus.publish(
            Topic.HEALTH_CHANGED, {"model": model, "before": before.value, "after": after.value, "reason": reason}
        )

    # -- owned background tasks -----------------------------------------------------------------
    async def _rescore_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rescore_interval_s)
            try:
                self.rescore()
            except Exception:
                log.exception("scheduled re-scoring failed")

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(3600.0)
            if self.store is not None:
                try:
                    await asyncio.to_thread(self.store.purge_events, self.clock() - self.settings.event_retention_s)
                    await asyncio.to_thread(self.store.purge_buckets, self.clock() - 2 * 86400.0)
                except Exception:
                    log.exception("purging old events and roll-up buckets failed")

    async def _follow_remote_changes(self) -> None:
        """Other processes' admin changes reload the configuration; their call records feed our roll-ups."""
        sub = self.bus.subscribe(_CONFIG_TOPICS | {Topic.SLM_METRICS}, maxsize=10_000)
        try:
            while True:
                event = await sub.get()
                if event.origin == self.bus.instance_id:
                    continue
                if event.topic == Topic.SLM_METRICS:
                    try:
                        self.telemetry.record(replace(CallRecord.from_dict(event.payload), source="remote"))
                    except (KeyError, ValueError, TypeError):
                        log.warning("ignoring a malformed remote call record")
                    continue
                try:
                    await self.reload_config()
                except Exception:
                    log.exception("reloading the configuration after %s failed", event.topic)
        finally:
            sub.close()

    async def _probe_loop(self) -> None:
        from router.prober import due_probes, probe

        interval = float(self.settings.probe_interval_s or 0)
        while True:
            await asyncio.sleep(max(1.0, interval / 4))
            for role, model in due_probes(self, interval):
                attempt = await probe(self, role, model, PROBE_REQUEST)
                if attempt is not None:
                    self._record_attempt(role, CallContext(tenant="router-probe"), attempt, source="probe")
