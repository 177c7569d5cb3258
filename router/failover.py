"""Failover for streamed calls: try the selection's order until one model produces output in time.

Voice rules: a model that has not produced its first output (token, audio block) by the role's
deadline is abandoned for the next one; once output reached the caller there is no failover (the
user already heard it), and a stream that then stalls or breaks ends with `StreamInterrupted`
instead of hanging. Every attempt is metered (one call record each) and judged by the model's
circuit breaker; each move to another model publishes `model.fallback.used`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Generic, TypeVar

from adapters.errors import AdapterError
from router.breaker import BreakerBoard
from router.context import CallContext
from router.modes import RoleTimeouts
from router.roles import Role
from router.selection import Selection
from router.telemetry import Outcome

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_STREAM_ITEMS = 1_000_000  # bound on any one stream (a provider that never stops is a broken one)


class AllCandidatesFailed(RuntimeError):
    """Every model of the role failed (or none may serve the call); the caller turns this into an apology."""

    user_message = "Sorry, I'm having trouble answering right now. Please try again in a moment."

    def __init__(self, role: Role, errors: list[str]) -> None:
        super().__init__(f"every {role.value} model failed: " + ("; ".join(errors) or "no candidate"))
        self.role = role
        self.errors = errors


class StreamInterrupted(AllCandidatesFailed):
    """The stream broke or stalled after output had reached the caller, so no other model could take over."""

    def __init__(self, role: Role, model: str, reason: str) -> None:
        super().__init__(role, [f"{model}: {reason} after output had started"])
        self.model = model
        self.reason = reason


class FirstOutputTimeout(AdapterError):
    def __init__(self, model: str, deadline_s: float) -> None:
        super().__init__(f"{model}: no output within {deadline_s:.2f} s", outcome=Outcome.TIMEOUT.value)


class StreamStalled(AdapterError):
    def __init__(self, model: str, stall_s: float) -> None:
        super().__init__(f"{model}: stream stalled for {stall_s:.2f} s", outcome=Outcome.TIMEOUT.value)


@dataclass
class Attempt:
    """What one model call measured; the router turns it into a CallRecord."""

    model: str
    started_wall: float
    started: float  # the runner's monotonic clock (time.perf_counter unless one was injected)
    first_output: float | None = None
    ended: float | None = None
    outcome: Outcome = Outcome.OK
    error: str = ""
    units_in: float = 0.0
    units_out: float = 0.0
    units_estimated: bool = False
    usage_reported: bool = False
    output_chars: int = 0

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_output is None else (self.first_output - self.started) * 1000.0

    @property
    def latency_ms(self) -> float:
        return ((self.ended or time.perf_counter()) - self.started) * 1000.0


@dataclass
class StreamPlan(Generic[T]):
    """How to run one kind of streamed call through failover."""

    role: Role
    ctx: CallContext
    selection: Selection
    timeouts: RoleTimeouts
    open: Callable[[str], AsyncIterator[T]]  # model name -> the adapter's stream
    is_output: Callable[[T], bool]  # does this item reach the user (text, audio)?
    observe: Callable[[Attempt, T], None]  # account usage carried by an item
    settle: Callable[[Attempt], None]  # fill in units at the end (estimate when the provider gave none)


class FailoverRunner:
    def __init__(
        self,
        breakers: BreakerBoard,
        *,
        wall_clock: Callable[[], float],
        record: Callable[[Role, CallContext, Attempt], None],
        on_fallback: Callable[[StreamPlan, str, str, str | None], None],
        on_moved: Callable[[StreamPlan, str], None],
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._breakers = breakers
        self._wall = wall_clock
        self._monotonic = monotonic  # times attempts; injectable so a simulation's attempts take simulated time
        self._record = record
        self._on_fallback = on_fallback  # (plan, failed model, reason, next model)
        self._on_moved = on_moved  # (plan, model that answered instead of the chosen one)

    async def run(self, plan: StreamPlan[T]) -> AsyncIterator[T]:
        order = plan.selection.order
        if not order:
            raise AllCandidatesFailed(plan.role, [plan.selection.rationale])
        errors: list[str] = []
        for i, model in enumerate(order):
            nxt = order[i + 1] if i + 1 < len(order) else None
            breaker = self._breakers.get(model)
            if not breaker.allow():
                errors.append(f"{model}: circuit open")
                self._on_fallback(plan, model, "circuit open", nxt)
                continue
            attempt = Attempt(model, self._wall(), self._monotonic())
            stream: AsyncIterator[T] | None = None
            try:
                stream = plan.open(model)
                async with aclosing(self._guard(stream, plan, attempt)) as guarded:
                    async for item in guarded:
                        yield item
            except (GeneratorExit, asyncio.CancelledError):
                attempt.outcome = Outcome.CANCELLED
                attempt.ended = self._monotonic()
                breaker.release()
                plan.settle(attempt)
                self._record(plan.role, plan.ctx, attempt)
                raise
            except Exception as exc:  # any provider failure, including ones an adapter did not wrap
                attempt.ended = self._monotonic()
                attempt.outcome = _outcome_of(exc)
                attempt.error = str(exc) or type(exc).__name__
                if not isinstance(exc, AdapterError):
                    log.warning("%s raised %s; treated as a provider failure", model, type(exc).__name__, exc_info=exc)
                health_failure = attempt.outcome in (Outcome.ERROR, Outcome.TIMEOUT)
                breaker.record(ok=not health_failure, slow=False)
                plan.settle(attempt)
                self._record(plan.role, plan.ctx, attempt)
                if attempt.first_output is not None:
                    reason = "stalled" if isinstance(exc, StreamStalled) else f"broke ({attempt.error})"
                    raise StreamInterrupted(plan.role, model, reason) from exc
                errors.append(f"{model}: {attempt.error}")
                self._on_fallback(plan, model, attempt.error, nxt)
                continue
            finally:
                if stream is not None and hasattr(stream, "aclose"):
                    try:
                        await stream.aclose()  # type: ignore[attr-defined]
                    except Exception:
                        pass
            attempt.ended = self._monotonic()
            slow = attempt.ttft_ms is not None and attempt.ttft_ms > plan.timeouts.slow_s * 1000.0
            breaker.record(ok=True, slow=slow)
            plan.settle(attempt)
            self._record(plan.role, plan.ctx, attempt)
            if model != plan.selection.chosen:
                self._on_moved(plan, model)
            return
        raise AllCandidatesFailed(plan.role, errors)

    async def _guard(self, stream: AsyncIterator[T], plan: StreamPlan[T], attempt: Attempt) -> AsyncIterator[T]:
        """Yield the stream's items, enforcing the first-output deadline and the stall timeout."""
        loop = asyncio.get_running_loop()
        first_deadline = loop.time() + plan.timeouts.first_output_s
        iterator = stream.__aiter__()
        for _ in range(MAX_STREAM_ITEMS):
            started = attempt.first_output is not None
            try:
                if started:
                    async with asyncio.timeout(plan.timeouts.stall_s):
                        item = await iterator.__anext__()
                else:
                    async with asyncio.timeout_at(first_deadline):
                        item = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                if started:
                    raise StreamStalled(attempt.model, plan.timeouts.stall_s) from None
                raise FirstOutputTimeout(attempt.model, plan.timeouts.first_output_s) from None
            plan.observe(attempt, item)
            if attempt.first_output is None and plan.is_output(item):
                attempt.first_output = self._monotonic()
            yield item
        raise AdapterError(f"{attempt.model}: stream exceeded {MAX_STREAM_ITEMS} items")


def _outcome_of(exc: BaseException) -> Outcome:
    if isinstance(exc, AdapterError):
        try:
            return Outcome(exc.outcome)
        except ValueError:
            return Outcome.ERROR
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT
    return Outcome.ERROR
