"""voice/server_metrics.py: one worker's exposition, and several workers' merged into one scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from voice.events import Error
from voice.server_metrics import ServerMetrics, merge_workers


def _render(m: ServerMetrics, sessions: int) -> str:
    return m.render(sessions=sessions, calls=0, loop_busy=0.5, backlog={"ps": {"0": 1.5}}).decode()


def test_merged_workers_keep_every_series_under_a_worker_label() -> None:
    a, b = ServerMetrics(), ServerMetrics()
    a.errors.labels(code="invalid_json").inc()
    b.errors.labels(code="invalid_json").inc(2)
    b.observe(Error.of("server_busy", "full"))
    a.loop_lag.observe(0.004)
    merged = merge_workers({0: _render(a, 3), 1: _render(b, 5)})
    families = {f.name: f for f in text_string_to_metric_families(merged.decode())}
    sessions = {s.labels["worker"]: s.value for s in families["somagent_sessions_active"].samples}
    assert sessions == {"0": 3.0, "1": 5.0}
    errors = {(s.labels["worker"], s.labels["code"]): s.value for s in families["somagent_errors"].samples
              if s.name == "somagent_errors_total"}
    assert errors == {("0", "invalid_json"): 1.0, ("1", "invalid_json"): 2.0, ("1", "server_busy"): 1.0}
    lag_counts = {s.labels["worker"]: s.value for s in families["somagent_event_loop_lag_seconds"].samples
                  if s.name == "somagent_event_loop_lag_seconds_count"}
    assert lag_counts == {"0": 1.0, "1": 0.0}
    backlog = [s for s in families["somagent_asr_backlog_seconds"].samples]
    assert {(s.labels["worker"], s.labels["recognizer"], s.value) for s in backlog} == {("0", "ps", 1.5),
                                                                                       ("1", "ps", 1.5)}
    assert merged.decode().count("# TYPE somagent_sessions_active gauge") == 1  # one family, not one per worker
