"""Starting and stopping the router: the store, persisted configuration, and the tasks the router owns.

start() opens the store (migrating it), adopts the persisted configuration, roll-ups and admin keys,
attaches the event bus, starts the write-behind writers and the owned loops (following other processes'
changes, purging, re-scoring, probing), and warms the speech engines and the local dialogue models. aclose()
stops all of it and closes every adapter built. Kept apart from the call path so that neither imports the other.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from adapters.aio import TaskSet
from adapters.errors import AdapterError
from router.admin.auth import AdminKeys, hash_key
from router.breaker import BreakerBoard
from router.catalog import Catalog, role_unit
from router.clock import Clock
from router.context import CallContext
from router.events import EventBus, Topic
from router.modes import DeploymentMode
from router.overrides import OverrideTable
from router.prober import due_probes, probe
from router.recorder import CallRecorder
from router.roles import Role
from router.scoreboard import Rescorer, Scoreboard
from router.settings import RouterSettings
from router.state import RoutingState
from router.sticky import StickyChoice, StickyMap
from router.store import RouterStore
from router.store.aggregates import RollupBuckets
from router.store.notify import attach_bus
from router.store.writer import BatchWriter
from router.telemetry import CallRecord, TelemetryAggregator

log = logging.getLogger(__name__)

_CONFIG_TOPICS = {Topic.PROFILE_UPDATED, Topic.MODE_CHANGED, Topic.FLAGS_CHANGED}


class RouterLifecycle:
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
        recorder: CallRecorder,
        admin_keys: AdminKeys,
        store: RouterStore | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.catalog = catalog
        self.state = state
        self.bus = bus
        self.telemetry = telemetry
        self.breakers = breakers
        self._sticky = sticky
        self._scoreboard = scoreboard
        self._rescorer = rescorer
        self._recorder = recorder
        self._admin_keys = admin_keys
        self.store = store
        self._owns_store = False
        self._owns_bus_attachment = False
        self._telemetry_writer: BatchWriter[CallRecord] | None = None
        self._sticky_writer: BatchWriter[StickyChoice] | None = None
        self._buckets = RollupBuckets()  # touched only by the telemetry writer's flushes
        self._tasks = TaskSet()
        self.started = False

    def open_store(self) -> RouterStore | None:
        """The store while the router runs with one (migrated and loaded), else None."""
        return self.store if self.started else None

    async def start(self, *, warm_speech: bool = True) -> None:
        if self.started:
            return
        if self._tasks.closed:
            self._tasks = TaskSet()
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
                self._admin_keys.add(name, key_hash)
            if not self.bus.attached:
                await attach_bus(self.bus, store, poll_interval_s=self.settings.event_poll_s,
                                 poll_topics=_CONFIG_TOPICS | {Topic.SLM_METRICS})
                self._owns_bus_attachment = True
            self._telemetry_writer = BatchWriter(
                self._write_telemetry, name="telemetry", interval_s=self.settings.flush_interval_s
            )
            self._sticky_writer = BatchWriter(
                lambda batch, _final: store.put_sticky(batch), name="sticky", interval_s=self.settings.flush_interval_s
            )
            self._recorder.persist = self._telemetry_writer.put
            self._sticky.on_put = self._sticky_writer.put
            self._telemetry_writer.start()
            self._sticky_writer.start()
            self._tasks.create_task(self._follow_remote_changes(), name="router-follow")
            self._tasks.create_task(self._purge_loop(), name="router-purge")
        self.started = True
        self._tasks.create_task(self._rescore_loop(), name="router-rescore")
        if self.settings.probe_interval_s:
            self._tasks.create_task(self._probe_loop(), name="router-probe")
        if warm_speech:
            await self._warm()

    async def _warm(self) -> None:
        """Load the speech engines and start the local dialogue models (their own process) of the current mode's
        profiles, all at once; one that cannot start is logged, and its role's fallbacks serve."""
        names: list[str] = []
        for role in (Role.SPEECH_RECOGNITION, Role.SPEECH_SYNTHESIS, Role.DIALOGUE):
            if role in self.state.policy.profiles.profiles:
                names += [n for n in self.state.profile(role).candidates if n not in names and n in self.catalog]

        async def start(name: str) -> None:
            try:
                await self.catalog.adapter(name).start()
            except AdapterError as exc:
                log.warning("model %s unavailable at start: %s", name, exc)

        await asyncio.gather(*(start(n) for n in names))

    async def flush(self) -> None:
        """Write everything pending (telemetry, sticky choices, events) now."""
        for writer in (self._telemetry_writer, self._sticky_writer):
            if writer is not None:
                await writer.flush()
        await self.bus.flush()

    async def aclose(self) -> None:
        await self._tasks.aclose()
        self._recorder.persist = None
        self._sticky.on_put = None
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
        self._scoreboard.clear()
        self._rescorer.rescore(publish=False)

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

    # -- owned background tasks -----------------------------------------------------------------
    async def _rescore_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rescore_interval_s)
            try:
                self._rescorer.rescore()
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
        interval = float(self.settings.probe_interval_s or 0)
        while True:
            await asyncio.sleep(max(1.0, interval / 4))
            for role, model in due_probes(self, interval):
                attempt = await probe(self, role, model)
                if attempt is not None:
                    self._recorder.record_attempt(role, CallContext(tenant="router-probe"), attempt, source="probe")
