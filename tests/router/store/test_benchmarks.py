"""router/store/benchmarks.py on SQLite and PostgreSQL: runs, their items, work items opened once, promotions
decided once, capsule versions immutable."""

from __future__ import annotations

from router.store import RouterStore
from router.store.benchmarks import BenchmarkResults, Promotion, RunRow, WorkItem


def test_the_tables_round_trip_on_both_databases(db_url: str) -> None:
    store = RouterStore(db_url)
    store.migrate()
    try:
        r = BenchmarkResults(store)
        run = RunRow("run-1", "quiz", "1", "d" * 64, "dialogue", "test", 3, ["a", "b"], "manual", "running", 10.0,
                     None, None, {"primary": "a"})
        r.start_run(run)
        r.put_item("run-1", "a", "i1", 11.0, {"score": 1.0, "metrics": {"chrf": 99.5}})
        assert r.items("run-1") == {("a", "i1"): {"score": 1.0, "metrics": {"chrf": 99.5}}}
        r.finish_run("run-1", "done", 12.0, {"a": {"quality": 1.0}})
        got = r.get_run("run-1")
        assert (got.status, got.summary, got.profile, got.models) == ("done", {"a": {"quality": 1.0}},
                                                                     {"primary": "a"}, ["a", "b"])
        assert [x.id for x in r.runs(capsule="quiz")] == ["run-1"] and r.runs(role="code") == []
        item = WorkItem(0, 12.0, "regression", "quiz", "dialogue", "a", "quality", "open", {"metrics": {}})
        first = r.open_work_item(item)
        assert first is not None and first.id > 0
        assert r.open_work_item(item) is None  # one open per capsule, model and kind
        assert r.close_work_item(first.id, 13.0, "ops").status == "closed"
        assert r.open_work_item(item) is not None
        p = Promotion("p1", 1.0, "dialogue", "test", "a", "promotable", {"reasons": []}, "ops")
        r.put_promotion(p)
        assert r.decide_promotion("p1", "promotable", "approved", "lee", 2.0)
        assert not r.decide_promotion("p1", "promotable", "approved", "lee", 3.0)  # decided once
        assert r.get_promotion("p1").decided_by == "lee"
        assert r.put_capsule("quiz", "1", "text", "x" * 64, {"name": "quiz"}, 1.0, "ops")
        assert r.put_capsule("quiz", "1", "text", "x" * 64, {"name": "quiz"}, 2.0, "ops")  # the same again
        assert not r.put_capsule("quiz", "1", "text", "y" * 64, {"name": "quiz"}, 3.0, "ops")  # another definition
        assert r.capsules() == [{"name": "quiz"}]
    finally:
        store.dispose()
