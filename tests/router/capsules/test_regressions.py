"""router/capsules/regressions.py: a metric that drops between two runs opens exactly one work item (stored,
listed, published, posted to the webhook); while it is open, another drop opens no second one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from router.capsules.regressions import RegressionWatch
from router.capsules.runner import CapsuleRunner
from router.events import Topic
from router.roles import Role
from tests.router.capsules.conftest import guesses
from tests.router.router_testkit import drain


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP receiver on loopback: what an operator's ticketing hook would get."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/regressions", received
    finally:
        server.shutdown()
        server.server_close()


async def test_a_drop_between_two_runs_opens_exactly_one_work_item(router, benchmarks, capsule, fake_chat, clock,
                                                                   webhook):
    url, received = webhook
    watch = RegressionWatch(benchmarks.results, router.bus, router.clock, tolerance=0.05, webhook_url=url)
    runner = CapsuleRunner(router, benchmarks.results, on_finished=[watch.check])
    sub = router.bus.subscribe({Topic.REGRESSION})
    first = await runner.run(capsule, role=Role.DIALOGUE)
    assert benchmarks.results.work_items() == []  # nothing to compare with yet
    clock.advance(3600)
    fake_chat.answer("oracle", guesses)  # the oracle's new version got worse
    second = await runner.run(capsule, role=Role.DIALOGUE)
    [item] = benchmarks.results.work_items()
    assert (item.kind, item.capsule, item.model, item.metric, item.status) == ("regression", "quiz", "oracle",
                                                                             "quality", "open")
    assert item.detail["run_id"] == second.id and item.detail["previous_run_id"] == first.id
    dropped = item.detail["metrics"]
    assert dropped["quality"]["before"] > 0.9 > dropped["quality"]["after"]
    assert "refusal_accuracy" in dropped  # every metric that fell is in the one item
    assert [e.payload["id"] for e in drain(sub)] == [item.id]
    assert received == [{"work_item": item.to_dict()}]
    # the weak model did not change: no item for it; a third bad run adds none while this one is open
    clock.advance(3600)
    await runner.run(capsule, role=Role.DIALOGUE)
    assert len(benchmarks.results.work_items()) == 1 and len(received) == 1


async def test_a_closed_item_lets_the_next_regression_open_another(router, benchmarks, capsule, fake_chat, clock):
    runner = benchmarks.runner
    await runner.run(capsule, role=Role.DIALOGUE)
    clock.advance(60)
    fake_chat.answer("oracle", guesses)
    await runner.run(capsule, role=Role.DIALOGUE)
    [item] = benchmarks.results.work_items("open")
    closed = benchmarks.results.close_work_item(item.id, clock(), "ops")
    assert closed is not None and closed.status == "closed" and closed.closed_by == "ops"
    assert benchmarks.results.close_work_item(item.id, clock(), "ops") is None  # closed already
    clock.advance(60)
    from tests.router.capsules.conftest import knows
    fake_chat.answer("oracle", knows)
    await runner.run(capsule, role=Role.DIALOGUE)  # it recovered: no regression
    clock.advance(60)
    fake_chat.answer("oracle", guesses)
    await runner.run(capsule, role=Role.DIALOGUE)
    assert len(benchmarks.results.work_items("open")) == 1 and len(benchmarks.results.work_items()) == 2


def test_what_counts_as_a_drop(router, benchmarks):  # noqa: ANN001
    watch = benchmarks.watch
    base = {"quality": 0.8, "metrics": {"wer": 0.10, "latency_p95_ms": 400.0, "ovrl_mos": 3.3}}
    assert watch.drops(base, {"quality": 0.77, "metrics": {"wer": 0.12, "latency_p95_ms": 550.0,
                                                            "ovrl_mos": 3.2}}) == {}  # within tolerance
    worse = watch.drops(base, {"quality": 0.7, "metrics": {"wer": 0.2, "latency_p95_ms": 700.0, "ovrl_mos": 2.9}})
    assert set(worse) == {"quality", "wer", "latency_p95_ms", "ovrl_mos"}


async def test_an_unreachable_webhook_loses_nothing(router, benchmarks, capsule, fake_chat, clock):
    from voice.serving import free_port  # a port nothing listens on

    watch = RegressionWatch(benchmarks.results, router.bus, router.clock,
                            webhook_url=f"http://127.0.0.1:{free_port()}/hook")
    runner = CapsuleRunner(router, benchmarks.results, on_finished=[watch.check])
    await runner.run(capsule, role=Role.DIALOGUE)
    clock.advance(60)
    fake_chat.answer("oracle", guesses)
    await runner.run(capsule, role=Role.DIALOGUE)
    assert [w.model for w in benchmarks.results.work_items()] == ["oracle"]  # stored all the same
