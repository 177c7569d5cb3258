"""router/store/database.py: persistence on SQLite and PostgreSQL: migrations, admin changes with audit,
write-behind telemetry, roll-ups rebuilt from the store, sticky conversations across processes, persisted events."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from router import CallContext, Role, Topic
from router.clock import ManualClock
from router.modes import DeploymentMode
from router.profiles import ModelProfile
from router.store import RouterStore
from router.store.schema import VERSION_TABLE, audit_t, overrides_t, profiles_t
from tests.router.router_testkit import (
    REQUEST,
    chat_entry,
    collect,
    feed,
    make_router,
    with_settings,
)


def _router(url: str, clock: ManualClock, **kw):
    entries = [chat_entry("a", price=(0.001, 0.002), roles=[Role.SUMMARY]), chat_entry("b", price=(0.0001, 0.0002))]
    return make_router(
        entries,
        ("a", "b"),
        clock=clock,
        extra={Role.SUMMARY: ModelProfile(Role.SUMMARY, "a")},
        settings=with_settings(database_url=url, flush_interval_s=0.05, **kw),
    )


async def test_migrations_create_the_schema_and_are_idempotent(db_url: str) -> None:
    store = RouterStore(db_url)
    store.migrate()
    store.migrate()
    assert store.schema_revision() == "0002_benchmark_capsules"
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {
        "router_settings",
        "router_profiles",
        "router_overrides",
        "router_personas",
        "router_audit",
        "router_events",
        "router_call_records",
        "router_rollup_buckets",
        "router_conversation_models",
        "router_admin_keys",
        VERSION_TABLE,
    } <= tables
    store.dispose()


async def test_admin_changes_survive_a_restart_with_audit(db_url: str, clock: ManualClock) -> None:
    r1 = _router(db_url, clock)
    await r1.start()
    await r1.admin.put_override("persona", "nurse", Role.DIALOGUE, "b", "alice", locked=True, reason="compliance")
    await r1.admin.put_profile(Role.DIALOGUE, {"primary": "b", "fallbacks": ["a"], "temperature": 0.3}, "bob")
    await r1.admin.set_auto_selection(True, "carol")
    await r1.admin.set_mode("production", "dave")
    await r1.admin.put_persona("nurse", {"latency_p95_ms": 900, "safety": []}, "erin")
    version = r1.state.version
    await r1.aclose()

    r2 = _router(db_url, clock)
    await r2.start()
    assert r2.state.mode.value == "production" and r2.state.auto_selection is True
    ov = r2.state.overrides.resolve(Role.DIALOGUE, CallContext(persona="nurse"))
    assert (ov.model, ov.locked, ov.reason, ov.updated_by) == ("b", True, "compliance", "alice")
    assert r2.state.profile(Role.DIALOGUE, DeploymentMode.PRODUCTION).primary == "a"  # stored for the test mode only
    stored = r2.state.profile(Role.DIALOGUE, DeploymentMode.TEST)
    assert (stored.primary, stored.fallbacks, stored.temperature) == ("b", ("a",), 0.3)
    assert r2.state.personas["nurse"].latency_p95_ms == 900
    assert r2.state.version == version == 5
    entries = await r2.admin.audit_since(0)
    assert [(e.actor, e.action) for e in entries] == [
        ("alice", "override.put"),
        ("bob", "profile.put"),
        ("carol", "flag.auto_selection"),
        ("dave", "mode.set"),
        ("erin", "persona.put"),
    ]
    assert entries[0].before is None and entries[0].after["model"] == "b"
    assert entries[1].before["primary"] == "a" and entries[1].after["primary"] == "b"
    assert all(e.ts == clock() for e in entries)
    assert await r2.admin.audit_since(clock() + 1) == []
    await r2.aclose()


async def test_a_failed_write_changes_nothing(db_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _router(db_url, clock)
    await r.start()

    def broken_audit(conn, entry):  # noqa: ANN001, ANN202
        if entry.action == "override.put" or entry.target.endswith("/summary"):
            raise RuntimeError("disk full")
        return 1

    monkeypatch.setattr(r.store, "_audit", broken_audit)
    with pytest.raises(RuntimeError):
        await r.admin.put_override("tenant", "acme", Role.DIALOGUE, "b", "alice")
    with pytest.raises(RuntimeError):  # the second profile's audit entry fails: neither profile is kept
        await r.admin.put_profiles(
            {"dialogue": {"primary": "b"}, "summary": {"primary": "a", "temperature": 0.1}}, "bob"
        )
    assert r.state.overrides.all() == [] and r.state.version == 0
    assert r.state.custom_profiles == {}
    with r.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(profiles_t)).scalar() == 0
    with r.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(overrides_t)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_t)).scalar() == 0
    await r.aclose()


async def test_telemetry_is_written_behind_and_rollups_rebuild_from_the_store(db_url: str, clock: ManualClock) -> None:
    r1 = _router(db_url, clock)
    await r1.start()
    feed(r1, "a", 30, ttft_ms=250)
    feed(r1, "b", 10, ok=False, age_s=1800)
    before = {m: r1.telemetry.rollup(Role.DIALOGUE, m, "24h", clock()) for m in ("a", "b")}
    await r1.aclose()  # flushes what the writer still holds

    store = RouterStore(db_url)
    assert store.count_call_records() == 40
    stored = {r.model: r for r in store.rollups("24h", clock(), Role.DIALOGUE)}
    for m in ("a", "b"):
        assert (stored[m].calls, stored[m].ok) == (before[m].calls, before[m].ok)
        assert stored[m].cost_per_unit == pytest.approx(before[m].cost_per_unit)
        assert stored[m].first_output_p95_ms == before[m].first_output_p95_ms
    assert [r.model for r in store.rollups("5m", clock(), Role.DIALOGUE)] == ["a"]
    store.dispose()
    r2 = _router(db_url, clock)
    await r2.start()
    for m in ("a", "b"):
        after = r2.telemetry.rollup(Role.DIALOGUE, m, "24h", clock())
        assert (after.calls, after.ok, after.cost_total) == (
            before[m].calls,
            before[m].ok,
            pytest.approx(before[m].cost_total),
        )
        assert after.first_output_p95_ms == before[m].first_output_p95_ms
    assert r2.telemetry.rollup(Role.DIALOGUE, "b", "5m", clock()).calls == 0
    assert r2.telemetry.last_ts(Role.DIALOGUE, "a") == clock()
    await r2.aclose()


async def test_sticky_conversation_continues_after_restart(db_url: str, clock: ManualClock) -> None:
    r1 = _router(db_url, clock)
    await r1.start()
    await r1.admin.set_auto_selection(True, "ops")
    feed(r1, "a", 20)
    feed(r1, "b", 20)
    r1.rescore()
    ctx = CallContext(conversation_id="conv-42")
    assert r1.select(Role.DIALOGUE, ctx).chosen == "b"  # cheaper
    await r1.aclose()

    r2 = _router(db_url, clock)
    await r2.start()
    feed(r2, "a", 20)
    r2.rescore()
    sub = r2.bus.subscribe({Topic.SELECTION})
    await collect(r2, ctx)
    payload = sub.queue.get_nowait().payload
    assert (payload["chosen"], payload["source"]) == ("b", "sticky")
    await r2.aclose()


async def test_events_are_persisted(db_url: str, clock: ManualClock) -> None:
    r = _router(db_url, clock)
    await r.start()
    await collect(r, CallContext(conversation_id="c"), REQUEST)
    r.bus.publish(Topic.CONVERSATION, {"conversation_id": "c", "type": "turn.completed"})
    await r.flush()
    topics = [e.topic for e in r.store.events_since(0)]
    assert Topic.SELECTION in topics and Topic.SLM_METRICS in topics and Topic.CONVERSATION in topics
    conv = r.store.events_since(0, topic=Topic.CONVERSATION)
    assert conv[0].payload == {"conversation_id": "c", "type": "turn.completed"}
    assert conv[0].origin == r.bus.instance_id
    await r.aclose()


async def test_admin_key_is_stored_hashed(db_url: str, clock: ManualClock) -> None:
    r = _router(db_url, clock, admin_key="s3cret-admin-key")
    await r.start()
    keys = r.store.admin_keys()
    assert [name for name, _ in keys] == ["bootstrap"]
    assert all("s3cret" not in h for _, h in keys)
    assert r.admin_keys.verify("s3cret-admin-key") == "bootstrap"
    await r.aclose()


async def test_store_rollups_match_memory_across_hour_and_minute_buckets(db_url: str, clock: ManualClock) -> None:
    import random

    from router.store.aggregates import RollupBuckets
    from router.telemetry import CallRecord, Outcome, TelemetryAggregator

    rng = random.Random(7)
    memory, buckets = TelemetryAggregator(), RollupBuckets()
    records = []
    for i in range(3000):
        age = rng.choice([rng.uniform(0, 240), rng.uniform(0, 3500), rng.uniform(0, 20 * 3600)])
        rec = CallRecord(
            ts=clock() - age,
            role=Role.DIALOGUE,
            model=rng.choice("xyz"),
            outcome=Outcome.OK if rng.random() < 0.9 else Outcome.ERROR,
            latency_ms=rng.lognormvariate(6, 0.5),
            ttft_ms=rng.lognormvariate(5, 0.5),
            units_in=800,
            units_out=80,
            cost=None if i % 10 == 0 else 0.001,
        )
        records.append(rec)
        memory.record(rec)
        buckets.add(rec)
    store = RouterStore(db_url)
    store.migrate()
    store.write_telemetry(records, buckets.take(clock(), everything=True))
    for window in ("5m", "1h", "24h"):
        stored = {r.model: r for r in store.rollups(window, clock(), Role.DIALOGUE)}
        for model in "xyz":
            mem = memory.rollup(Role.DIALOGUE, model, window, clock())
            got = stored[model]
            assert (got.calls, got.ok, got.cost_unknown_calls) == (mem.calls, mem.ok, mem.cost_unknown_calls), window
            assert got.cost_total == pytest.approx(mem.cost_total)
            assert (got.latency_p95_ms, got.first_output_p50_ms) == (mem.latency_p95_ms, mem.first_output_p50_ms)
    assert store.count_call_records() == 3000
    store.dispose()


async def test_workers_starting_together_migrate_once(tmp_path) -> None:  # noqa: ANN001
    import concurrent.futures

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [RouterStore(url) for _ in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda st: st.migrate(), stores))
    assert {st.schema_revision() for st in stores} == {"0002_benchmark_capsules"}
    for st in stores:
        st.dispose()


def test_plain_postgres_urls_use_psycopg() -> None:
    assert RouterStore("postgresql://u@127.0.0.1:1/db").url.drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="unsupported"):
        RouterStore("mysql://u@h/db")
