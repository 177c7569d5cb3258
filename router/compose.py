"""The router's composition root: the one place that builds every part and wires them together.

Parts receive what they need (state, store, bus, catalogue, narrow callables) and never import the
module that composes them; `ModelRouter` is the handle the service holds, `RouterAdmin` the admin
operations, `RouterLifecycle` starting and stopping. `build_default_router` (router.defaults) calls this.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from router.admin.auth import AdminKeys, hash_key
from router.admin.operations import RouterAdmin
from router.audit import MemoryAuditLog
from router.breaker import BreakerBoard, BreakerState
from router.catalog import Catalog
from router.clock import Clock, system_clock
from router.events import EventBus, Topic
from router.feedback import QualityFeedback
from router.lifecycle import RouterLifecycle
from router.modes import DeploymentMode, ModePolicy, make_policies
from router.profiles import ProfileSet
from router.recorder import CallRecorder
from router.router import ModelRouter
from router.scoreboard import Rescorer, Scoreboard
from router.selection import Selector
from router.settings import RouterSettings
from router.state import RoutingState
from router.sticky import StickyMap
from router.store import RouterStore
from router.telemetry import TelemetryAggregator


def compose_router(
    catalog: Catalog,
    profiles: ProfileSet | None = None,
    bus: EventBus | None = None,
    *,
    policies: dict[DeploymentMode, ModePolicy] | None = None,
    settings: RouterSettings | None = None,
    store: RouterStore | None = None,
    clock: Clock | None = None,
    monotonic: Callable[[], float] = time.perf_counter,
) -> ModelRouter:
    """A router over `catalog` with per-mode `policies` (or one `profiles` set for every mode).

    Without `store`, one is opened at start from `settings.database_url` (when set) and owned. `clock` is
    the wall clock, `monotonic` the one call attempts are timed with: a simulation in virtual time passes both."""
    settings = settings or RouterSettings()
    clock = clock or system_clock
    bus = bus or EventBus(clock=clock)
    if policies is None:
        if profiles is None:
            raise ValueError("ModelRouter needs profiles or per-mode policies")
        policies = make_policies(
            profiles, selection_weights=settings.selection_weights, stale_after_s=settings.stale_after_s
        )
    state = RoutingState(policies, settings.mode, settings.auto_selection)
    telemetry = TelemetryAggregator()

    def on_breaker_change(model: str, before: BreakerState, after: BreakerState, reason: str) -> None:
        bus.publish(
            Topic.HEALTH_CHANGED, {"model": model, "before": before.value, "after": after.value, "reason": reason}
        )

    breakers = BreakerBoard(state.policy.breaker, clock, on_breaker_change)
    sticky = StickyMap()
    scoreboard = Scoreboard(catalog, state, telemetry, clock)
    selector = Selector(catalog, state, telemetry, breakers, sticky, clock, scoreboard.get, scoreboard.cached)
    rescorer = Rescorer(scoreboard, selector.warm, state, bus)
    recorder = CallRecorder(catalog, telemetry, bus)
    admin_keys = AdminKeys()
    if settings.admin_key:
        admin_keys.add("bootstrap", hash_key(settings.admin_key))
    lifecycle = RouterLifecycle(
        settings=settings,
        clock=clock,
        catalog=catalog,
        state=state,
        bus=bus,
        telemetry=telemetry,
        breakers=breakers,
        sticky=sticky,
        scoreboard=scoreboard,
        rescorer=rescorer,
        recorder=recorder,
        admin_keys=admin_keys,
        store=store,
    )
    admin = RouterAdmin(
        state=state,
        catalog=catalog,
        bus=bus,
        breakers=breakers,
        recorder=recorder,
        rescore=lambda: rescorer.rescore(publish=False),
        open_store=lifecycle.open_store,
        memory_audit=MemoryAuditLog(),
        clock=clock,
    )
    return ModelRouter(
        settings=settings,
        clock=clock,
        catalog=catalog,
        state=state,
        bus=bus,
        telemetry=telemetry,
        breakers=breakers,
        sticky=sticky,
        scoreboard=scoreboard,
        rescorer=rescorer,
        selector=selector,
        recorder=recorder,
        lifecycle=lifecycle,
        admin=admin,
        admin_keys=admin_keys,
        feedback=QualityFeedback(state, bus, sample_every=settings.dnsmos_sample_every),
        monotonic=monotonic,
    )
