"""voice/limits.py: the per-session bounds, read from the environment, and the event rate limiter."""

from __future__ import annotations

import pytest

from router.clock import ManualClock
from voice.limits import SessionLimits, TokenBucket


def test_limits_come_from_the_environment_and_bad_values_are_refused():
    limits = SessionLimits.from_env({"SOMAGENT_MAX_ITEMS": "50", "SOMAGENT_EVENTS_PER_S": "12.5"})
    assert (limits.max_items, limits.events_per_s, limits.max_responses) == (50, 12.5, SessionLimits.max_responses)
    with pytest.raises(ValueError, match="SOMAGENT_MAX_RESPONSES must be a number"):
        SessionLimits.from_env({"SOMAGENT_MAX_RESPONSES": "many"})
    with pytest.raises(ValueError, match="must be positive"):
        SessionLimits.from_env({"SOMAGENT_MAX_ITEM_CHARS": "0"})


def test_the_bucket_allows_a_burst_then_the_rate():
    clock = ManualClock(0.0)
    bucket = TokenBucket(rate=10.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.1)  # one token back
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.advance(60.0)  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3
