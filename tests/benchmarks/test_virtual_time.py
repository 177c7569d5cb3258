"""benchmarks/virtual_time.py: the router's real call path in virtual time, as the router benchmark runs it:
deadlines, attempt timings and the wall clock all follow the simulated clock, and nothing really sleeps."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.virtual_time import VirtualTimeLoop
from router import CallContext, Role, Topic
from router.catalog import Catalog
from router.compose import compose_router
from router.modes import DeploymentMode, make_policies
from router.prober import probe
from router.profiles import ModelProfile, ProfileSet
from router.settings import RouterSettings
from tests.router.router_testkit import REQUEST, ScriptedChat, chat_entry

START = 1_750_000_000.0


async def _scenario() -> tuple[list[dict], float, dict | None]:
    loop = asyncio.get_running_loop()
    origin = loop.time()

    def clock() -> float:
        return START + (loop.time() - origin)

    entries = [
        chat_entry("hangs", ScriptedChat("hangs", delay_s=3600.0)),  # far past the 2 s first-output deadline
        chat_entry("backup", ScriptedChat("backup", delay_s=0.3)),
    ]
    profiles = ProfileSet({Role.DIALOGUE: ModelProfile(Role.DIALOGUE, "hangs", ("backup",))})
    router = compose_router(
        Catalog(entries),
        policies=make_policies(profiles),
        settings=RouterSettings(mode=DeploymentMode.TEST),
        clock=clock,
        monotonic=loop.time,
    )
    sub = router.bus.subscribe({Topic.SLM_METRICS})
    ctx = CallContext(tenant="t", conversation_id="c1")
    text = "".join([c.text async for c in router.stream_chat(Role.DIALOGUE, REQUEST, ctx)])
    assert text.strip() == "hi there"
    records = [sub.queue.get_nowait().payload for _ in range(sub.queue.qsize())]
    attempt = await probe(router, Role.DIALOGUE, "backup", monotonic=loop.time)
    return records, clock() - START, None if attempt is None else {"ttft_ms": attempt.ttft_ms}


def test_virtual_time_drives_deadline_and_attempt_timing() -> None:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        records, elapsed_s, probed = runner.run(_scenario())
        assert runner.get_loop().real_waits == 0  # every wait was a timer the clock jumped to, none a real sleep
    hung, answered = records
    assert (hung["model"], hung["outcome"]) == ("hangs", "timeout")
    assert hung["latency_ms"] == pytest.approx(2000.0)  # cut by the router's own first-output deadline
    assert hung["ts"] == pytest.approx(START)
    assert (answered["model"], answered["outcome"]) == ("backup", "ok")
    assert answered["ttft_ms"] == pytest.approx(300.0)
    assert answered["ts"] == pytest.approx(START + 2.0)
    assert elapsed_s == pytest.approx(2.6)
    assert probed is not None and probed["ttft_ms"] == pytest.approx(300.0)
