"""router/store/notify.py: across worker processes: two buses (two routers) on one database relay events, with
LISTEN/NOTIFY on PostgreSQL and by polling the events table on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from router import CallContext, EventBus, Role, Topic
from router.clock import ManualClock
from router.events import Event
from router.store import RouterStore
from router.store.notify import SqliteEventPoller, attach_bus
from router.telemetry import CallRecord, Outcome
from tests.router.router_testkit import chat_entry, make_router, with_settings

WAIT_S = 10.0  # generous bound on delivery; not a speed assertion


async def _next(sub, topic: str):  # noqa: ANN001, ANN202
    for _ in range(100):
        event = await sub.get(timeout=WAIT_S)
        if event.topic == topic:
            return event
    raise AssertionError(f"no {topic} event")


async def test_events_cross_between_two_buses(pg_url: str) -> None:
    store_a, store_b = RouterStore(pg_url), RouterStore(pg_url)
    store_a.migrate()
    bus_a, bus_b = EventBus(instance_id="worker-a"), EventBus(instance_id="worker-b")
    await attach_bus(bus_a, store_a, flush_interval_s=0.02)
    await attach_bus(bus_b, store_b, flush_interval_s=0.02)
    sub_a, sub_b = bus_a.subscribe({Topic.CONVERSATION}), bus_b.subscribe({Topic.CONVERSATION})
    try:
        sent = bus_a.publish(Topic.CONVERSATION, {"conversation_id": "c1", "n": 1})
        got = await _next(sub_b, Topic.CONVERSATION)
        assert (got.id, got.origin, got.payload) == (sent.id, "worker-a", {"conversation_id": "c1", "n": 1})
        assert [e.id for e in _drain(sub_a)] == [sent.id]  # its own event, locally
        # big payloads exceed NOTIFY's limit: they travel by reference and are read back from the store
        big = {"blob": "x" * 20_000}
        sent_big = bus_b.publish(Topic.CONVERSATION, big)
        got_big = await _next(sub_a, Topic.CONVERSATION)
        assert (got_big.id, got_big.payload) == (sent_big.id, big)
        # each bus saw its own events once (locally), never again through NOTIFY
        sent_last = bus_a.publish(Topic.CONVERSATION, {"n": 3})
        assert (await _next(sub_b, Topic.CONVERSATION)).id == sent_big.id
        assert (await _next(sub_b, Topic.CONVERSATION)).id == sent_last.id
        assert [e.id for e in _drain(sub_a)] == [sent_last.id]
        assert _drain(sub_b) == []
    finally:
        await bus_a.aclose()
        await bus_b.aclose()
        store_a.dispose()
        store_b.dispose()


def _drain(sub):  # noqa: ANN001, ANN202
    return [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]


@pytest.fixture(params=["postgresql", "sqlite"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, float | None]:
    """Where two workers meet: PostgreSQL relays by LISTEN, SQLite by polling the events table."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/router.db", 0.05
    return request.getfixturevalue("pg_url"), None


async def test_an_admin_change_in_one_worker_reaches_the_other(shared_db: tuple[str, float | None]) -> None:
    clock = ManualClock(1_750_000_000.0)
    url, poll_s = shared_db

    def worker():  # noqa: ANN202
        entries = [chat_entry("a"), chat_entry("b")]
        settings = with_settings(database_url=url, flush_interval_s=0.02, event_poll_s=poll_s)
        return make_router(entries, ("a", "b"), clock=clock, settings=settings)

    a, b = worker(), worker()
    await a.start()
    await b.start()
    try:
        sub = b.bus.subscribe({Topic.PROFILE_UPDATED, Topic.SLM_METRICS})
        await a.admin.put_override("tenant", "acme", Role.DIALOGUE, "b", "ops", locked=True)
        event = await _next(sub, Topic.PROFILE_UPDATED)
        assert event.origin == a.bus.instance_id
        for _ in range(100):  # b reloads its configuration when it sees the event
            if b.state.overrides.resolve(Role.DIALOGUE, CallContext(tenant="acme")) is not None:
                break
            await asyncio.sleep(0.05)
        assert b.select(Role.DIALOGUE, CallContext(tenant="acme")).chosen == "b"
        assert b.state.version == a.state.version
        # call records from one worker feed the other's roll-ups
        a.record(CallRecord(ts=clock(), role=Role.DIALOGUE, model="a", outcome=Outcome.OK, latency_ms=100.0))
        await _next(sub, Topic.SLM_METRICS)
        for _ in range(100):
            if b.telemetry.rollup(Role.DIALOGUE, "a", "5m", clock()).calls >= 1:
                break
            await asyncio.sleep(0.05)
        assert b.telemetry.rollup(Role.DIALOGUE, "a", "5m", clock()).calls == 1
    finally:
        await a.aclose()
        await b.aclose()


def test_the_sqlite_poller_delivers_each_other_process_event_once() -> None:
    """Each poll re-reads an overlap window (events are written behind): what it delivered stays delivered."""
    got: list[Event] = []
    poller = SqliteEventPoller(None, "me", on_event=got.append, interval_s=1.0, overlap_s=5.0)  # type: ignore[arg-type]
    mine = Event(Topic.PROFILE_UPDATED, {}, id="e1", ts=100.0, origin="me")
    theirs = Event(Topic.PROFILE_UPDATED, {"v": 1}, id="e2", ts=101.0, origin="other")
    late = Event(Topic.PROFILE_UPDATED, {"v": 2}, id="e3", ts=99.0, origin="other")  # stamped before e2, written after
    poller.poll_result([mine, theirs])
    poller.poll_result([late, theirs])
    assert [e.id for e in got] == ["e2", "e3"]
    assert poller.received == 2
