"""The model router: every model call goes through here, tagged with its role.

`ModelRouter` is the call path (select, stream with failover, synthesise, recognise, meter) and the one
handle the service holds: it is handed its parts by the composition root (router.compose) and exposes
them (state, store, bus, telemetry, breakers, admin operations) for the admin API and the tests.
Starting and stopping belong to `RouterLifecycle`; it delegates to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import aclosing
from dataclasses import replace
from operator import methodcaller
from typing import Any

import numpy as np

from adapters.asr.base import SpeechRecognizer
from adapters.llm.base import ChatChunk, ChatRequest, without_tools
from router.admin.auth import AdminKeys
from router.admin.operations import RouterAdmin
from router.breaker import BreakerBoard
from router.catalog import Catalog
from router.clock import Clock
from router.context import CallContext
from router.events import EventBus, LazyPayload, Topic
from router.failover import (
    AllCandidatesFailed,
    Attempt,
    FailoverRunner,
    StreamInterrupted,
    StreamPlan,
)
from router.fallback_asr import FallbackRecognizer
from router.feedback import QualityFeedback
from router.lifecycle import RouterLifecycle
from router.metered_asr import MeteredRecognizer
from router.modes import DeploymentMode
from router.overrides import OverrideTable
from router.profiles import ProfileSet
from router.recorder import CallRecorder
from router.roles import Role
from router.scoreboard import Rescorer, Scoreboard
from router.scoring import RoleScores
from router.selection import Selection, Selector
from router.settings import RouterSettings
from router.state import RoutingState
from router.sticky import StickyChoice, StickyMap
from router.store import RouterStore
from router.telemetry import CallRecord, Outcome, Rollup, TelemetryAggregator

log = logging.getLogger(__name__)

__all__ = ["AllCandidatesFailed", "ModelRouter", "StreamInterrupted"]


class ModelRouter:
    def __init__(
        self,
        *,
        settings: RouterSettings,
        clock: Clock,
        catalog: Catalog,
        state: RoutingState,
        bus: EventBus,
        telemetry: TelemetryAggregator,
        breakers: BreakerBoard,
        sticky: StickyMap,
        scoreboard: Scoreboard,
        rescorer: Rescorer,
        selector: Selector,
        recorder: CallRecorder,
        lifecycle: RouterLifecycle,
        admin: RouterAdmin,
        admin_keys: AdminKeys,
        feedback: QualityFeedback,
        monotonic: Callable[[], float] = time.perf_counter,  # times call attempts (a simulation passes its own)
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.catalog = catalog
        self.state = state
        self.bus = bus
        self.telemetry = telemetry
        self.breakers = breakers
        self.sticky = sticky
        self.selector = selector
        self.admin = admin
        self.admin_keys = admin_keys
        self.feedback = feedback  # production signals into the quality aggregates and conversation.events
        self._scoreboard = scoreboard
        self._rescorer = rescorer
        self._recorder = recorder
        self._lifecycle = lifecycle
        # The runner's hooks are this call path's own (metering, fallback events, sticky moves).
        self._failover = FailoverRunner(
            breakers,
            wall_clock=clock,
            record=self._record_attempt,
            on_fallback=self._on_fallback,
            on_moved=self._on_moved,
            monotonic=monotonic,
        )

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

    # -- lifecycle (RouterLifecycle's) ---------------------------------------------------------
    @property
    def store(self) -> RouterStore | None:
        return self._lifecycle.store

    @property
    def started(self) -> bool:
        return self._lifecycle.started

    async def start(self, *, warm_speech: bool = True) -> None:
        """Open the store (migrating it), load persisted configuration and roll-ups, start the owned
        tasks, and (unless told not to) warm the speech engines and start the local dialogue models, so the first
        turn pays no loading cost."""
        await self._lifecycle.start(warm_speech=warm_speech)

    async def flush(self) -> None:
        """Write everything pending (telemetry, sticky choices, events) now."""
        await self._lifecycle.flush()

    async def aclose(self) -> None:
        await self._lifecycle.aclose()
        self.feedback.close()

    async def reload_config(self) -> None:
        """Adopt the stored configuration (at start, and when another process changed it)."""
        await self._lifecycle.reload_config()

    async def _load_sticky(self, ctx: CallContext) -> None:
        """A conversation this process has not seen may have been served elsewhere (or before a restart)."""
        conv = ctx.conversation_id
        store = self._lifecycle.open_store()
        if not conv or store is None or self.sticky.known(conv):
            return
        try:
            choices = await asyncio.to_thread(store.get_sticky, conv)
        except Exception:
            log.exception("loading conversation %s's models failed; selecting afresh", conv)
            choices = []
        self.sticky.load(conv, choices)

    # -- telemetry, scores, selection -----------------------------------------------------------
    def record(self, rec: CallRecord, *, persist: bool = True, publish: bool = True) -> None:
        self._recorder.record(rec, persist=persist, publish=publish)

    def rollups(self, role: Role, window: str) -> list[Rollup]:
        now = self.clock()
        models = {m for r, m in self.telemetry.keys(role)} | {e.name for e in self.catalog.for_role(role)}
        return [self.telemetry.rollup(role, m, window, now) for m in sorted(models)]

    def scores_for(self, role: Role) -> RoleScores:
        return self._scoreboard.get(role)

    def rescore(self, role: Role | None = None, *, publish: bool = True) -> list[RoleScores]:
        """Recompute scores (all roles of the mode, or one) and publish `model.profile.scored` per role."""
        return self._rescorer.rescore(role, publish=publish)

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
    async def stream_chat(
        self, role: Role, request: ChatRequest, ctx: CallContext, *, exclude: Collection[str] = (),
        only: str | None = None,
    ) -> AsyncIterator[ChatChunk]:
        """Stream from the first candidate that answers in time; fail over only before any text was yielded.

        Raises AllCandidatesFailed when every candidate failed, StreamInterrupted (a subclass) when the
        stream broke after text had been yielded. `exclude` leaves models out of the failover order (a caller
        resuming after a model broke mid-reply asks the others). `only` runs one model and no other (a benchmark
        capsule measures a model, not the profile): no selection is made, published or stuck to.
        """
        selection = await self._selection(role, ctx, exclude, only)
        profile = self.state.profile(role)
        if request.temperature is None and profile.temperature is not None:
            request = replace(request, temperature=profile.temperature)
        if request.max_tokens is None and profile.max_tokens is not None:
            request = replace(request, max_tokens=profile.max_tokens)
        prompt_chars = sum(len(m.content) + sum(len(c.arguments) for c in m.tool_calls) for m in request.messages)
        final_request, plain_request = request, without_tools(request)

        def observe(attempt: Attempt, chunk: ChatChunk) -> None:
            attempt.output_chars += len(chunk.text) + sum(len(c.arguments) for c in chunk.tool_calls)
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
            # a model that calls no tools gets the conversation's calls and results as text
            open=lambda model: self.catalog.adapter(model).stream(
                final_request if self.catalog.entry(model).tools else plain_request),
            is_output=lambda chunk: bool(chunk.text or chunk.tool_calls),
            observe=observe,
            settle=settle,
        )
        async with aclosing(self._failover.run(plan)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _selection(self, role: Role, ctx: CallContext, exclude: Collection[str], only: str | None) -> Selection:
        if only is not None:
            if self.catalog.get(only) is None or not self.catalog.entry(only).serves(role):
                raise LookupError(f"model {only!r} does not serve role {role.value!r}")
            return replace(self.selector.select(role, ctx, dry_run=True), chosen=only, order=(only,), source="only")
        await self._load_sticky(ctx)
        return _without(self.select(role, ctx), exclude)

    def tool_role(self, ctx: CallContext) -> Role:
        """The role that answers when the client offers tools: tool planning where its profile names a model that
        calls them, else dialogue (whose models then answer in words)."""
        try:
            candidates = self.candidates(Role.TOOL_PLANNING, ctx)
        except LookupError:  # no profile for the role in this mode
            return Role.DIALOGUE
        if any((entry := self.catalog.get(m)) is not None and entry.tools for m in candidates):
            return Role.TOOL_PLANNING
        return Role.DIALOGUE

    async def complete(self, role: Role, request: ChatRequest, ctx: CallContext) -> str:
        """The whole reply as text (tool planning, summaries, ...), through the same failover."""
        parts = [chunk.text async for chunk in self.stream_chat(role, request, ctx)]
        return "".join(parts)

    async def synthesize(
        self, text: str, ctx: CallContext, voice: str | None = None, *, exclude: Collection[str] = (),
        only: str | None = None,
    ) -> AsyncIterator[tuple[np.ndarray, int]]:
        """Yield (pcm int16, sample rate) blocks; fail over to the next voice engine before first audio.
        StreamInterrupted when an engine broke off mid-sentence; `exclude` leaves engines out (a caller going
        on after one broke asks the others); `only` runs that engine alone."""
        selection = await self._selection(Role.SPEECH_SYNTHESIS, ctx, exclude, only)

        async def open_tts(model: str) -> AsyncIterator[tuple[np.ndarray, int]]:
            tts = self.catalog.adapter(model)
            kept: list[np.ndarray] | None = [] if self.feedback.wants(model, ctx) else None  # a sampled sentence
            async for block in tts.synthesize(text, voice=voice):
                if kept is not None:
                    kept.append(block)
                yield block, tts.sample_rate
            if kept:
                self.feedback.synthesized(model, ctx, np.concatenate(kept), tts.sample_rate)

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

    def recognizer(self, ctx: CallContext) -> FallbackRecognizer:
        """The role's recognisers behind one: a stream fails over inside, each move published."""
        selection = self.select(Role.SPEECH_RECOGNITION, ctx)

        def on_fallback(failed: str, reason: str, next_model: str | None) -> None:
            self.bus.publish(Topic.FALLBACK_USED, {
                "role": Role.SPEECH_RECOGNITION.value, "failed_model": failed, "reason": reason,
                "next_model": next_model, "chosen": selection.chosen, "selection_source": selection.source,
                "locked_override_moved": False, "conversation_id": ctx.conversation_id, "tenant": ctx.tenant,
                "persona": ctx.persona})

        return FallbackRecognizer(self.recognizers(ctx, selection), on_fallback)

    def speech_backlog(self) -> dict[str, dict[str, float]]:
        """Seconds of audio queued per worker of each recogniser built so far (admission control, /metrics)."""
        return self._per_recognizer(methodcaller("backlog"))

    def speech_occupancy(self) -> dict[str, dict[str, float]]:
        """Cumulative busy seconds per worker of each recogniser built so far (admission control)."""
        return self._per_recognizer(methodcaller("occupancy"))

    def _per_recognizer(self, reading: Callable[[SpeechRecognizer], dict[str, float]]) -> dict[str, dict[str, float]]:
        return {name: reading(adapter) for name, adapter in self.catalog.built_items()
                if isinstance(adapter, SpeechRecognizer)}

    def recognizers(self, ctx: CallContext, selection: Selection | None = None) -> list[SpeechRecognizer]:
        """The recognisers to try, in order (ejected ones last), each metered per utterance."""
        selection = selection or self.select(Role.SPEECH_RECOGNITION, ctx)
        healthy = [m for m in selection.order if not self.breakers.is_open(m)]
        ejected = [m for m in selection.order if self.breakers.is_open(m)]

        def report(attempt: Attempt) -> None:
            self._record_attempt(Role.SPEECH_RECOGNITION, ctx, attempt)

        return [
            MeteredRecognizer(self.catalog.adapter(m), m, self.breakers.get(m), report, self.clock)
            for m in healthy + ejected
        ]

    # -- failover hooks -------------------------------------------------------------------------
    def _record_attempt(self, role: Role, ctx: CallContext, attempt: Attempt) -> None:
        self._recorder.record_attempt(role, ctx, attempt, ctx.source)

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
        """Failover moved the call to `model`: the conversation keeps it, unless it is a last resort (which only
        stands in for the others: the next call tries them again)."""
        conv = plan.ctx.conversation_id
        entry = self.catalog.get(model)
        if conv and not (entry is not None and entry.last_resort):
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


def _without(selection: Selection, exclude: Collection[str]) -> Selection:
    """The selection with some models left out of its failover order (those that broke off mid-stream)."""
    if not exclude:
        return selection
    order = tuple(m for m in selection.order if m not in exclude)
    return replace(selection, chosen=order[0] if order else "", order=order)
