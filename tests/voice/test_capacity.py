"""voice/capacity.py: the load monitor on its own: refusals by reason, the cost of one more session projected
from the measured load, a blocked loop seen, recogniser workers' busy share read."""

from __future__ import annotations

import asyncio

import pytest

from voice.capacity import CapacityLimits


class _ThreadClock:
    """Loop-thread CPU that advances by `busy` x wall time (read through the loop's own clock)."""

    def __init__(self, busy: float) -> None:
        self.busy = busy
        self.loop = asyncio.get_running_loop()

    def __call__(self) -> float:
        return self.loop.time() * self.busy


async def _sampled(monitor, seconds: float = 0.3) -> None:
    await monitor.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await monitor.aclose()


async def test_monitor_refuses_by_reason():
    from voice.capacity import LoadMonitor

    limits = CapacityLimits(max_sessions=10, max_loop_busy=0.5, max_asr_backlog_s=1.0, max_loop_lag_ms=40, window_s=0.4)
    calm = LoadMonitor(limits, sessions=lambda: 3, backlog=lambda: {"asr": {"w0": 0.2, "w1": 0.4}},
                       thread_clock=_ThreadClock(0.1))
    await _sampled(calm)
    assert calm.refusal() is None
    assert calm.load().asr_backlog_s == {"asr": pytest.approx(0.3)}

    full = LoadMonitor(limits, sessions=lambda: 10, backlog=dict)
    assert full.refusal().reason == "sessions"

    behind = LoadMonitor(limits, sessions=lambda: 3, backlog=dict, session_backlog=lambda: [1.2, 1.4, 0.2],
                         thread_clock=_ThreadClock(0.1))
    await _sampled(behind)
    refusal = behind.refusal()
    assert refusal.reason == "recognition_backlog" and "for 2 sessions" in refusal.message
    assert behind.load().session_asr_backlog_max_s == 1.4
    racing = LoadMonitor(limits, sessions=lambda: 3, backlog=dict, session_backlog=lambda: [0.0, 9.0, 0.2],
                         thread_clock=_ThreadClock(0.1))
    await _sampled(racing)
    assert racing.refusal() is None  # one client far ahead of real time is behind on its own account

    busy = LoadMonitor(limits, sessions=lambda: 3, backlog=dict, thread_clock=_ThreadClock(0.6))
    await _sampled(busy)
    assert busy.refusal().reason == "loop_busy" and busy.loop_busy() == pytest.approx(0.6, abs=0.05)


async def test_monitor_projects_one_more_session_at_the_measured_cost():
    from voice.capacity import LoadMonitor

    limits = CapacityLimits(max_sessions=100, max_loop_busy=0.75, window_s=0.4)
    ten = LoadMonitor(limits, sessions=lambda: 10, backlog=dict, thread_clock=_ThreadClock(0.7))
    await _sampled(ten)
    assert ten.refusal().reason == "loop_busy"  # 0.70 + 0.07 for the eleventh is past 0.75
    forty = LoadMonitor(limits, sessions=lambda: 40, backlog=dict, thread_clock=_ThreadClock(0.7))
    await _sampled(forty)
    assert forty.refusal() is None  # 0.70 + 0.0175 fits


async def test_monitor_sees_a_blocked_loop():
    import time

    from voice.capacity import LoadMonitor

    lags: list[float] = []
    limits = CapacityLimits(max_loop_lag_ms=40, window_s=0.4)
    monitor = LoadMonitor(limits, sessions=lambda: 2, backlog=dict, on_lag=lags.append)
    await monitor.start()
    try:
        for _ in range(6):
            await asyncio.sleep(0.005)
            end = time.perf_counter() + 0.2
            while time.perf_counter() < end:  # CPU-bound work on the loop, every turn
                pass
    finally:
        await monitor.aclose()
    assert max(lags) >= 0.05
    assert monitor.refusal().reason == "event_loop_lag"
    assert monitor.loop_busy() > 0.3


async def test_monitor_reads_recogniser_workers_busy_share_and_refuses_past_it():
    from voice.capacity import LoadMonitor

    clock = asyncio.get_running_loop().time
    start = clock()

    def occupancy(share_w0: float, share_w1: float):
        return lambda: {"asr": {"w0": (clock() - start) * share_w0, "w1": (clock() - start) * share_w1}}

    limits = CapacityLimits(max_asr_busy=0.8, window_s=0.4, asr_window_s=0.4)

    def monitor(sessions: int, busy) -> LoadMonitor:
        return LoadMonitor(limits, sessions=lambda: sessions, backlog=dict, occupancy=busy,
                           thread_clock=_ThreadClock(0))

    light = monitor(4, occupancy(0.3, 0.1))
    await _sampled(light)
    assert light.asr_busy()["asr"] == pytest.approx(0.2, abs=0.05)
    assert light.refusal() is None  # 0.2 / 4 sessions x 5
    heavy = monitor(4, occupancy(1.0, 0.5))
    await _sampled(heavy)
    assert heavy.asr_busy()["asr"] == pytest.approx(0.75, abs=0.05)
    assert heavy.refusal().reason == "recognition_busy"  # 0.75 / 4 x 5 is past 0.8
    alone = monitor(1, occupancy(1.0, 1.0))
    await _sampled(alone)
    assert alone.refusal() is None  # one session's load may be one client racing ahead: a second is let in


async def test_monitor_counts_a_burst_of_new_sessions_at_the_cost_of_those_measured():
    from voice.capacity import LoadMonitor

    count = [10]
    limits = CapacityLimits(max_sessions=100, max_loop_busy=0.75, window_s=0.4)
    monitor = LoadMonitor(limits, sessions=lambda: count[0], backlog=dict, thread_clock=_ThreadClock(0.3))
    await _sampled(monitor)
    assert monitor.refusal() is None  # 10 sessions cost 0.30: 0.03 each
    count[0] = 30  # twenty connect at once, before they load the loop
    assert monitor.refusal().reason == "loop_busy"  # 31 x 0.03 is past 0.75 although busy still reads 0.30
