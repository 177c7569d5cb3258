"""Synthetic probe calls: keep the telemetry of idle candidates fresh so auto-selection can judge them.

Without probes, only the models that carry traffic have fresh telemetry and every other candidate is
"stale" for auto-selection. Probes are tiny (one output token), go through the model's breaker (so
while a model is ejected, a probe rather than a user's call is its half-open trial), and are recorded
with source "probe". Off unless SOMAGENT_ROUTER_PROBE_INTERVAL_S is set.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from adapters.llm.base import ChatMessage, ChatRequest
from router.breaker import BreakerBoard
from router.catalog import LLM_ROLES, Catalog
from router.clock import Clock
from router.failover import Attempt
from router.roles import Role
from router.state import RoutingState
from router.telemetry import Outcome, TelemetryAggregator

PROBE_REQUEST = ChatRequest(
    messages=(ChatMessage("user", "Reply with the single word OK."),),
    temperature=0.0,
    max_tokens=1,
    metadata={"purpose": "router-probe"},
)


class Probed(Protocol):
    """What probing reads: the router's parts, not the router."""

    clock: Clock
    state: RoutingState
    catalog: Catalog
    telemetry: TelemetryAggregator
    breakers: BreakerBoard


def due_probes(router: Probed, interval_s: float) -> list[tuple[Role, str]]:
    """LLM candidates of the current mode whose newest telemetry is older than the interval."""
    now = router.clock()
    due = []
    for role in router.state.policy.profiles.roles():
        if role not in LLM_ROLES:
            continue
        for model in router.state.profile(role).candidates:
            entry = router.catalog.get(model)
            if entry is None or entry.last_resort:
                continue
            last = router.telemetry.last_ts(role, model)
            if last is None or now - last >= interval_s:
                due.append((role, model))
    return due


async def probe(
    router: Probed,
    role: Role,
    model: str,
    request: ChatRequest = PROBE_REQUEST,
    *,
    monotonic: Callable[[], float] = time.perf_counter,
) -> Attempt | None:
    """One probe call; None when the breaker refused it (nothing to record). `monotonic` times it (a
    simulation in virtual time passes its own)."""
    attempt = Attempt(model, router.clock(), monotonic())
    breaker = router.breakers.get(model)
    if not breaker.allow():
        return None
    timeouts = router.state.timeouts(role)
    try:
        async with asyncio.timeout(timeouts.first_output_s + timeouts.stall_s):
            async for chunk in router.catalog.adapter(model).stream(request):
                if chunk.text and attempt.first_output is None:
                    attempt.first_output = monotonic()
                if chunk.usage is not None:
                    attempt.units_in, attempt.units_out = chunk.usage.input_tokens, chunk.usage.output_tokens
        attempt.ended = monotonic()
        slow = attempt.ttft_ms is not None and attempt.ttft_ms > timeouts.slow_s * 1000.0
        breaker.record(ok=True, slow=slow)
    except asyncio.CancelledError:
        breaker.release()
        raise
    except Exception as exc:
        attempt.ended = monotonic()
        attempt.outcome = Outcome.TIMEOUT if isinstance(exc, TimeoutError) else Outcome.ERROR
        attempt.error = str(exc) or type(exc).__name__
        breaker.record(ok=False)
    return attempt
