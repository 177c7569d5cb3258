"""When capsules run by themselves: `SOMAGENT_CAPSULES_SCHEDULE` = nightly (03:00 UTC, the default), HH:MM
(daily, UTC), every <N>h / every <N>m, or off. The server runs it as one of its tasks; `somagent-voice capsules
schedule` runs the same loop as a cron-style command."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_DAILY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_EVERY = re.compile(r"^every\s+(\d+)\s*([hm])$")


@dataclass(frozen=True)
class Schedule:
    daily_at: tuple[int, int] | None = None
    every_s: float | None = None

    @classmethod
    def parse(cls, spec: str | None) -> Schedule | None:
        """None for off; ValueError for what is not a schedule."""
        text = (spec or "nightly").strip().lower()
        if text in ("off", "none", "0", "false"):
            return None
        if text == "nightly":
            return cls(daily_at=(3, 0))
        if m := _DAILY.match(text):
            return cls(daily_at=(int(m[1]), int(m[2])))
        if (m := _EVERY.match(text)) and int(m[1]) > 0:
            return cls(every_s=int(m[1]) * (3600.0 if m[2] == "h" else 60.0))
        raise ValueError(f"SOMAGENT_CAPSULES_SCHEDULE must be nightly, HH:MM, 'every <N>h|m' or off, not {spec!r}")

    def next_after(self, now: float) -> float:
        if self.every_s is not None:
            return now + self.every_s
        assert self.daily_at is not None
        at = datetime.fromtimestamp(now, UTC).replace(hour=self.daily_at[0], minute=self.daily_at[1], second=0,
                                                       microsecond=0)
        if at.timestamp() <= now:
            at += timedelta(days=1)
        return at.timestamp()

    def describe(self) -> str:
        if self.every_s is not None:
            return f"every {self.every_s:g} s"
        assert self.daily_at is not None
        return f"daily at {self.daily_at[0]:02d}:{self.daily_at[1]:02d} UTC"
