"""Call records: into the in-memory roll-ups, to the store's writer (once the router runs with one),
and onto the bus as `slm.metrics`. Shared by the call path, probes and admin ingest."""

from __future__ import annotations

from collections.abc import Callable

from router.catalog import Catalog, role_unit
from router.context import CallContext
from router.events import EventBus, LazyPayload, Topic
from router.failover import Attempt
from router.roles import Role
from router.telemetry import CallRecord, TelemetryAggregator


class CallRecorder:
    def __init__(self, catalog: Catalog, telemetry: TelemetryAggregator, bus: EventBus) -> None:
        self._catalog = catalog
        self._telemetry = telemetry
        self._bus = bus
        self.persist: Callable[[CallRecord], None] | None = None  # the telemetry writer's put, while started

    def record(self, rec: CallRecord, *, persist: bool = True, publish: bool = True) -> None:
        self._telemetry.record(rec)
        if persist and self.persist is not None:
            self.persist(rec)
        if publish:
            self._bus.publish(Topic.SLM_METRICS, LazyPayload(rec.to_dict))

    def record_attempt(self, role: Role, ctx: CallContext, attempt: Attempt, source: str = "live") -> None:
        """One attempt of a call (failover makes one per model tried), costed at the catalogue price."""
        entry = self._catalog.get(attempt.model)
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
