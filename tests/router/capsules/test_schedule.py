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
