"""router/capsules/schedule.py: nightly by default, daily at a time, every N hours or minutes, or off."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from router.capsules.schedule import Schedule


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_default_is_nightly_at_three():
    nightly = Schedule.parse(None)
    assert nightly == Schedule.parse("nightly") == Schedule(daily_at=(3, 0))
    assert nightly.next_after(at("2026-12-07T17:00:00")) == at("2026-12-08T03:00:00")
    assert nightly.next_after(at("2026-12-07T02:59:00")) == at("2026-12-07T03:00:00")
    assert nightly.next_after(at("2026-12-07T03:00:00")) == at("2026-12-08T03:00:00")


def test_other_schedules():
    assert Schedule.parse("22:30").next_after(at("2026-12-07T23:00:00")) == at("2026-12-08T22:30:00")
    assert Schedule.parse("every 6h").next_after(100.0) == 100.0 + 6 * 3600
    assert Schedule.parse("every 15m").every_s == 900
    assert Schedule.parse("off") is None


@pytest.mark.parametrize("bad", ["sometimes", "25:00", "every 0h", "every 3d"])
def test_what_is_not_a_schedule_is_refused(bad):  # noqa: ANN001
    with pytest.raises(ValueError, match="SOMAGENT_CAPSULES_SCHEDULE"):
        Schedule.parse(bad)


async def test_the_server_runs_every_roles_capsules_on_schedule(router, tmp_path):  # noqa: ANN001
    import asyncio
    import json

    from router.capsules.service import Benchmarks, BenchmarkSettings
    from tests.router.capsules.conftest import TEXT_CAPSULE

    (tmp_path / "quiz.json").write_text(json.dumps(TEXT_CAPSULE))
    benchmarks = Benchmarks(router, BenchmarkSettings(tmp_path, Schedule(every_s=0.05)))
    await benchmarks.start()  # schedule on, as in the server
    try:
        for _ in range(200):  # bounded
            runs = benchmarks.results.runs()
            if len(runs) >= 2:
                break
            await asyncio.sleep(0.05)
        assert len(runs) >= 2 and {r.purpose for r in runs} == {"scheduled"}
        assert {r.capsule for r in runs} == {"quiz"} and runs[0].models == ["weak", "oracle"]
    finally:
        await benchmarks.aclose()
