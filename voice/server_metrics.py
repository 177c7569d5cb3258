"""The server's Prometheus metrics (`GET /metrics`), one registry per server so several can share a process.

Sessions report by events: `observe(event)` sees every server event a session emits (before the
`somagent.*` filter), counting `error` codes, ASR lag episodes and the per-stage latencies of
`somagent.turn.metrics`. Gauges that describe the present (sessions, calls, recognition backlog, loop busy)
are read when scraped.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from voice.events import AsrLagging, Error, ServerEvent, TurnMetricsReport

CONTENT_TYPE = CONTENT_TYPE_LATEST

STAGES = {  # the turn-metrics field -> the stage label
    "end_of_turn_to_asr_final_ms": "end_of_speech_to_final",
    "asr_final_to_first_token_ms": "final_to_first_token",
    "first_token_to_first_audio_ms": "first_token_to_first_audio",
    "voice_to_voice_ms": "voice_to_voice",
    "speech_end_to_end_of_turn_ms": "end_of_speech_to_end_of_turn",
}
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions_active = Gauge("somagent_sessions_active", "Realtime sessions open now (WebSocket and WebRTC)",
                                     registry=r)
        self.calls_active = Gauge("somagent_calls_active", "WebRTC calls live now", registry=r)
        self.sessions_opened = Counter("somagent_sessions_opened", "Sessions admitted", ["transport"], registry=r)
        self.refusals = Counter("somagent_sessions_refused", "Sessions and calls refused by admission control",
                                ["reason", "transport"], registry=r)
        self.loop_lag = Histogram("somagent_event_loop_lag_seconds", "How late the event loop wakes a 50 ms sleep",
                                  buckets=LAG_BUCKETS, registry=r)
        self.loop_busy = Gauge("somagent_event_loop_busy_ratio",
                               "CPU time of the event-loop thread per wall second (recent window)", registry=r)
        self.asr_backlog = Gauge("somagent_asr_backlog_seconds", "Seconds of audio queued per recogniser worker",
                                 ["recognizer", "worker"], registry=r)
        self.stage_latency = Histogram("somagent_stage_latency_seconds", "Per-turn latency by stage",
                                       ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("somagent_errors", "error events sent to clients, by code", ["code"], registry=r)
        self.asr_lagging = Counter("somagent_asr_lagging", "Utterances whose recognition fell behind (partials shed)",
                                   registry=r)

    def observe(self, event: ServerEvent) -> None:
        if isinstance(event, Error):
            self.errors.labels(code=event.code).inc()
        elif isinstance(event, TurnMetricsReport):
            for field, stage in STAGES.items():
                value = event.values.get(field)
                if isinstance(value, (int, float)) and value >= 0:
                    self.stage_latency.labels(stage=stage).observe(value / 1000.0)
        elif isinstance(event, AsrLagging) and event.lagging:
            self.asr_lagging.inc()

    def render(self, *, sessions: int, calls: int, loop_busy: float,
               backlog: Mapping[str, Mapping[str, float]]) -> bytes:
        self.sessions_active.set(sessions)
        self.calls_active.set(calls)
        self.loop_busy.set(loop_busy)
        self.asr_backlog.clear()  # workers come and go
        for recognizer, workers in backlog.items():
            for worker, seconds in workers.items():
                self.asr_backlog.labels(recognizer=recognizer, worker=worker).set(seconds)
        return generate_latest(self.registry)



class _Families:
    """A collector yielding already-built metric families (what `merge_workers` assembled)."""

    def __init__(self, families: list) -> None:
        self._families = families

    def collect(self):
        return iter(self._families)


def merge_workers(texts: Mapping[int, str]) -> bytes:
    """Several workers' expositions as one, each series labelled with its `worker` (sum over it for the
    server's totals): a scrape of any worker of `serve --workers N` sees them all."""
    families: dict[str, object] = {}
    for worker in sorted(texts):
        for family in text_string_to_metric_families(texts[worker]):
            samples = [s._replace(labels={**s.labels, "worker": str(worker)}) for s in family.samples]
            if family.name in families:
                families[family.name].samples.extend(samples)  # type: ignore[attr-defined]
            else:
                family.samples = samples
                families[family.name] = family
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))  # type: ignore[arg-type]
    return generate_latest(registry)
