"""router/prober.py: synthetic probe calls against a real local HTTP chat server: recorded as telemetry, and the
half-open trial of an ejected model."""

from __future__ import annotations

from router import CallContext, Role
from router.breaker import BreakerState
from router.clock import ManualClock
from router.telemetry import Outcome
from tests.router.fake_chat_server import FakeChatServer, Script
from tests.router.router_testkit import http_entry, make_router


def _router(server: FakeChatServer, clock: ManualClock):
    entries = [
        http_entry("primary", server.base_url, price=(0.003, 0.015)),
        http_entry("backup", server.base_url, price=(0.00015, 0.0006)),
    ]
    return make_router(entries, ("primary", "backup"), clock=clock, first_output_s=0.6, stall_s=0.6)


async def test_probe_calls_record_telemetry_and_serve_as_half_open_trials(
    fake_chat: FakeChatServer, clock: ManualClock
) -> None:
    from router.prober import PROBE_REQUEST, due_probes, probe

    router = _router(fake_chat, clock)
    assert due_probes(router, 60.0) == [(Role.DIALOGUE, "primary"), (Role.DIALOGUE, "backup")]
    fake_chat.script("backup", Script(tokens=("OK",), usage=(9, 1)))
    attempt = await probe(router, Role.DIALOGUE, "backup", PROBE_REQUEST)
    assert attempt is not None and attempt.outcome is Outcome.OK and attempt.units_out == 1
    assert fake_chat.requests_for("backup")[0].body["max_tokens"] == 1
    router._record_attempt(Role.DIALOGUE, CallContext(source="probe"), attempt)
    assert due_probes(router, 60.0) == [(Role.DIALOGUE, "primary")]
    breaker = router.breakers.get("primary")
    for _ in range(router.state.policy.breaker.min_calls):
        breaker.allow()
        breaker.record(ok=False)
    assert await probe(router, Role.DIALOGUE, "primary", PROBE_REQUEST) is None  # ejected: no call at all
    clock.advance(router.state.policy.breaker.base_ejection_s)
    fake_chat.script("primary", Script(tokens=("OK",)))
    await probe(router, Role.DIALOGUE, "primary", PROBE_REQUEST)
    assert breaker.snapshot().probes == 1 and breaker.state is BreakerState.HALF_OPEN
    await router.aclose()
