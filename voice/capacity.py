"""How full the server is, measured, and whether it can take one more session.

Every session's audio path runs on one event loop, so the loop is what fills first. One task on that loop
samples, every `interval_s`:

- **loop lag**: how late a sleep wakes up; every session's next audio frame waits that long. Admission reads
  the window's median, so one pause (a GC, a burst of connects) does not refuse anyone;
- **loop busy**: CPU time of the loop's own thread per wall second (`time.thread_time`), i.e. the share of
  its core that the audio path already uses. Unlike machine CPU it ignores the recogniser processes and any
  neighbour, and it rises before lag does;
- **recognition backlog**: seconds of audio a session has handed to recognition that are not recognised yet
  (what its user waits for after speaking), read for the second-worst session, since one client sending
  faster than real time is behind on its own account; per worker for /metrics (`ModelRouter.speech_backlog`);
- **recognition busy**: the share of the window each recogniser worker had work outstanding
  (`ModelRouter.speech_occupancy`), the workers' equivalent of loop busy.

A new session (WebSocket or WebRTC call) is refused when the server is at `max_sessions`, when recent lag
or busy is over its limit, when admitting one more would push busy over it at the measured cost per
session (loop or recognisers), or when the recognisers are behind. Limits come from the environment
(`CapacityLimits.from_env`); the defaults were measured on the 2-core development machine (README).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

from adapters.aio import cancel_and_wait

log = logging.getLogger(__name__)

MIN_SESSIONS_TO_PROJECT = 5
MIN_SESSIONS_MEASURED = 2


@dataclass(frozen=True)
class CapacityLimits:
    max_sessions: int = 150  # per process, a last resort: bench_load fills one loop at ~150-200 sessions of 20 ms
    max_loop_lag_ms: float = 50.0  # median of the window's samples: sustained lateness, not one GC pause
    max_loop_busy: float = 0.75  # share of one core used by the loop thread (bench_load: p99 lag < 25 ms at 0.8)
    max_asr_backlog_s: float = 1.0  # the worst session's audio not yet recognised (where it starts shedding partials)
    max_asr_busy: float = 0.65  # mean share of asr_window_s a recogniser's workers had work outstanding
    asr_window_s: float = 10.0  # longer than the loop's: talkers pause for seconds, a 2 s window swings 0..1
    window_s: float = 2.0
    retry_after_s: int = 2
    # False: only max_sessions applies. For a server that shares its loop with its own client (replay, test
    # harnesses, benchmarks), where the loop's load is the client's and refusing would only refuse itself.
    measured: bool = True

    ENV = {
        "max_sessions": "SOMAGENT_MAX_SESSIONS",
        "max_loop_lag_ms": "SOMAGENT_MAX_LOOP_LAG_MS",
        "max_loop_busy": "SOMAGENT_MAX_LOOP_BUSY",
        "max_asr_backlog_s": "SOMAGENT_MAX_ASR_BACKLOG_S",
        "max_asr_busy": "SOMAGENT_MAX_ASR_BUSY",
        "retry_after_s": "SOMAGENT_RETRY_AFTER_S",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CapacityLimits:
        env = os.environ if env is None else env
        values: dict[str, float | int] = {}
        for name, var in cls.ENV.items():
            if env.get(var):
                kind = type(getattr(cls, name))
                try:
                    values[name] = kind(env[var])
                except ValueError:
                    raise ValueError(f"{var} must be a number, not {env[var]!r}") from None
        limits = cls(**values)  # type: ignore[arg-type]
        if limits.max_sessions < 0 or limits.max_loop_lag_ms <= 0 or not 0 < limits.max_loop_busy <= 1 \
                or limits.max_asr_backlog_s <= 0 or not 0 < limits.max_asr_busy <= 1 or limits.retry_after_s < 1:
            raise ValueError("capacity limits: need max_sessions >= 0, max_loop_lag_ms > 0, 0 < max_loop_busy <= 1, "
                             "max_asr_backlog_s > 0, 0 < max_asr_busy <= 1, retry_after_s >= 1")
        return limits


@dataclass(frozen=True)
class Refusal:
    reason: str  # sessions | event_loop_lag | loop_busy | recognition_backlog | recognition_busy
    message: str


@dataclass(frozen=True)
class Load:
    sessions: int
    loop_lag_p50_ms: float
    loop_lag_max_ms: float
    loop_busy: float
    asr_backlog_s: dict[str, float]  # recogniser -> mean seconds queued per worker
    session_asr_backlog_max_s: float  # the most-behind session
    asr_busy: dict[str, float]  # recogniser -> mean share of the window its workers were busy

    def to_dict(self) -> dict:
        return asdict(self)


Backlog = Callable[[], Mapping[str, Mapping[str, float]]]  # recogniser -> worker -> seconds


class LoadMonitor:
    def __init__(self, limits: CapacityLimits, *, sessions: Callable[[], int], backlog: Backlog,
                 occupancy: Backlog | None = None, session_backlog: Callable[[], Iterable[float]] | None = None,
                 on_lag: Callable[[float], None] | None = None,
                 interval_s: float = 0.05, thread_clock: Callable[[], float] = time.thread_time) -> None:
        self.limits = limits
        self._sessions = sessions
        self._backlog = backlog
        self._occupancy = occupancy or dict
        self._session_backlog = session_backlog or tuple
        self._on_lag = on_lag
        self._interval = interval_s
        self._thread_clock = thread_clock
        n = max(2, int(limits.window_s / interval_s))
        self._lags: deque[float] = deque(maxlen=n)  # seconds late, per sample
        self._busy: deque[tuple[float, float]] = deque(maxlen=n)  # (wall s, loop-thread cpu s) per sample
        # (t, cumulative busy seconds per recogniser worker, sessions open) per sample, over the longer window
        self._asr_samples = max(2, int(limits.asr_window_s / interval_s)) + 1
        self._occupied: deque[tuple[float, Mapping[str, Mapping[str, float]], int]] = deque(
            maxlen=max(n, self._asr_samples))
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="load-monitor")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wall, cpu = loop.time(), self._thread_clock()
        self._occupied.append((wall, self._occupancy(), self._sessions()))
        while True:
            await asyncio.sleep(self._interval)
            now, now_cpu = loop.time(), self._thread_clock()
            self._occupied.append((now, self._occupancy(), self._sessions()))
            lag = max(0.0, now - wall - self._interval)
            self._lags.append(lag)
            self._busy.append((now - wall, now_cpu - cpu))
            wall, cpu = now, now_cpu
            if self._on_lag is not None:
                self._on_lag(lag)

    # -- readings -------------------------------------------------------------------------------
    def loop_busy(self) -> float:
        wall = sum(w for w, _ in self._busy)
        return min(1.0, sum(c for _, c in self._busy) / wall) if wall > 0 else 0.0

    def _lag_p50_ms(self) -> float:
        if not self._lags:
            return 0.0
        ordered = sorted(self._lags)
        return ordered[len(ordered) // 2] * 1000.0

    def asr_backlog(self) -> dict[str, float]:
        out = {}
        for model, workers in self._backlog().items():
            if workers:
                out[model] = sum(workers.values()) / len(workers)
        return out

    def _recent(self, count: int) -> list[tuple[float, Mapping[str, Mapping[str, float]], int]]:
        return list(self._occupied)[-count:]

    def _mean_sessions(self, count: int) -> float:
        recent = self._recent(count)
        return sum(n for _, _, n in recent) / len(recent) if recent else 0.0

    def asr_busy(self) -> dict[str, float]:
        """Per recogniser, the mean share of the window its workers had work outstanding."""
        recent = self._recent(self._asr_samples)
        if len(recent) < 2:
            return {}
        (t0, first, _), (t1, last, _) = recent[0], recent[-1]
        if t1 <= t0:
            return {}
        out = {}
        for model, workers in last.items():
            before = first.get(model, {})
            shares = [min(1.0, (busy - before.get(w, busy)) / (t1 - t0)) for w, busy in workers.items()]
            if shares:
                out[model] = sum(shares) / len(shares)
        return out

    def load(self) -> Load:
        return Load(sessions=self._sessions(), loop_lag_p50_ms=round(self._lag_p50_ms(), 2),
                    loop_lag_max_ms=round(max(self._lags, default=0.0) * 1000.0, 2),
                    loop_busy=round(self.loop_busy(), 3),
                    asr_backlog_s={k: round(v, 3) for k, v in self.asr_backlog().items()},
                    session_asr_backlog_max_s=round(max(self._session_backlog(), default=0.0), 3),
                    asr_busy={k: round(v, 3) for k, v in self.asr_busy().items()})

    def refusal(self) -> Refusal | None:
        """Why one more session would not get the service the admitted ones get; None when it would."""
        lim = self.limits
        sessions = self._sessions()
        if sessions >= lim.max_sessions:
            return Refusal("sessions", f"the server is at its limit of {lim.max_sessions} sessions")
        if not lim.measured or sessions < MIN_SESSIONS_MEASURED or len(self._lags) < self._lags.maxlen // 2:
            # Not measured; or too soon to judge (start-up is no trend); or one session, whose load may be one
            # client sending far faster than real time (a replay), which must not lock everyone else out.
            return None
        lag = self._lag_p50_ms()
        if lag > lim.max_loop_lag_ms:
            return Refusal(
                "event_loop_lag", f"the audio loop is running {lag:.0f} ms late (limit {lim.max_loop_lag_ms:g} ms)"
            )
        busy = self.loop_busy()
        # Each session costs what an average one cost over the window, so the sessions admitted since (a burst of
        # connects that has not loaded the loop yet) count too. Read once there are enough sessions to average.
        seen = self._mean_sessions(len(self._busy))
        projected = busy / seen * (sessions + 1) if seen >= MIN_SESSIONS_TO_PROJECT else busy
        if projected > lim.max_loop_busy:
            return Refusal("loop_busy", f"the audio loop is {busy:.0%} busy with {sessions} sessions; one more would "
                                        f"take it past {lim.max_loop_busy:.0%}")
        # A client sending faster than real time is behind on its own account; two sessions behind are a
        # recogniser that cannot keep up: read the second-worst.
        backlogs = sorted(self._session_backlog(), reverse=True)
        behind = backlogs[1] if len(backlogs) > 1 else 0.0
        if behind > lim.max_asr_backlog_s:
            late = sum(1 for b in backlogs if b > lim.max_asr_backlog_s)
            return Refusal("recognition_backlog", f"speech recognition is over {lim.max_asr_backlog_s:g} s of audio "
                                                  f"behind for {late} sessions")
        seen_asr = self._mean_sessions(self._asr_samples)
        for model, share in self.asr_busy().items():
            # as for the loop: the window's cost per session, times the sessions there would be
            projected = share / seen_asr * (sessions + 1) if seen_asr >= 1 else share
            if projected > lim.max_asr_busy:
                return Refusal("recognition_busy", f"speech recognition ({model}) is {share:.0%} busy with {sessions} "
                                                   f"sessions; one more would take it past {lim.max_asr_busy:.0%}")
        return None
