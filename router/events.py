"""The event bus shared by the router and the service.

Subscribers get their own bounded queue; a slow subscriber loses its oldest events (and is told how
many) rather than stalling publishers on the audio path. Once attached to a store (by the store side,
router.store.notify.attach_bus), the bus persists every event (written behind); on PostgreSQL it also
relays events between worker processes with LISTEN/NOTIFY, delivering other processes' events to local
subscribers with `origin` set to theirs. The bus knows only the narrow sink and relay it is handed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where an attached bus hands every event it publishes (the store's write-behind writer)."""

    def put(self, event: Event) -> None: ...

    async def flush(self) -> None: ...

    async def aclose(self) -> None: ...


class Relay(Protocol):
    """What brings other processes' events in (PostgreSQL LISTEN); the bus only stops it."""

    async def aclose(self) -> None: ...


class Topic:
    SLM_METRICS = "slm.metrics"
    SELECTION = "router.selection"
    FALLBACK_USED = "model.fallback.used"
    PROFILE_UPDATED = "model.profile.updated"
    PROFILE_SCORED = "model.profile.scored"
    MODE_CHANGED = "mode.changed"
    CONVERSATION = "conversation.events"
    FLAGS_CHANGED = "router.flags.changed"
    HEALTH_CHANGED = "model.health.changed"
    BENCHMARK_RESULTS = "slm.benchmark.results"  # a capsule run finished (router/capsules)
    REGRESSION = "benchmark.regression"  # a metric dropped between runs: a work item was opened
    PROMOTION = "model.promotion"  # a promotion candidate was judged, approved or staged
    POLICY_ESCALATION = "policy.escalation"  # a session's energy analytics met a policy rule (voice/policy.py)


class LazyPayload(Mapping[str, Any]):
    """A payload built on first read (by a subscriber, or the event writer's thread), so that publishing
    a rich event (a selection with every candidate's breakdown) costs the hot path almost nothing."""

    __slots__ = ("_build", "_data")

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._build: Callable[[], dict[str, Any]] | None = build
        self._data: dict[str, Any] | None = None

    def _resolve(self) -> dict[str, Any]:
        if self._data is None:
            assert self._build is not None
            self._data, self._build = self._build(), None
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._resolve()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolve())

    def __len__(self) -> int:
        return len(self._resolve())

    def __repr__(self) -> str:
        return repr(self._resolve())


@dataclass(frozen=True)
class Event:
    topic: str
    payload: Mapping[str, Any]  # a dict, or a LazyPayload
    id: str = field(default_factory=lambda: f"evt_{uuid.uuid4().hex[:16]}")
    ts: float = field(default_factory=time.time)
    origin: str = ""  # the publishing bus's instance id


class Subscription:
    def __init__(self, bus: EventBus, topics: frozenset[str] | None, maxsize: int) -> None:
        self._bus = bus
        self.topics = topics
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.topics is not None and event.topic not in self.topics:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> Event:
        return await asyncio.wait_for(self.queue.get(), timeout)

    def close(self) -> None:
        self._bus._unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventBus:
    def __init__(self, *, clock: Callable[[], float] | None = None, instance_id: str | None = None) -> None:
        self._subs: list[Subscription] = []
        self._clock = clock or time.time
        self.instance_id = instance_id or f"bus_{uuid.uuid4().hex[:12]}"
        # Event ids: a random per-bus prefix and a counter, unique across processes and cheaper than uuid4.
        self._id_prefix = f"evt_{uuid.uuid4().hex[:10]}_"
        self._ids = itertools.count(1)
        self._writer: EventSink | None = None
        self._listener: Relay | None = None

    @property
    def clock(self) -> Callable[[], float]:
        """The clock events are stamped with (a relay that reads stored events reads by it)."""
        return self._clock

    def publish(self, topic: str, payload: Mapping[str, Any]) -> Event:
        event = Event(topic, payload, f"{self._id_prefix}{next(self._ids):x}", self._clock(), self.instance_id)
        for sub in list(self._subs):
            sub.offer(event)
        if self._writer is not None:
            self._writer.put(event)
        return event

    def deliver(self, event: Event) -> None:
        """Hand another process's event to local subscribers (not persisted again, not re-broadcast)."""
        if event.origin == self.instance_id:
            return
        for sub in list(self._subs):
            sub.offer(event)

    def subscribe(self, topics: set[str] | None = None, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, frozenset(topics) if topics else None, maxsize)
        self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    @property
    def attached(self) -> bool:
        return self._writer is not None

    def attach(self, writer: EventSink, listener: Relay | None = None) -> None:
        """Hand every event published from now on to `writer`; the bus owns both from here on and
        aclose() stops them. The store side builds them (router.store.notify.attach_bus)."""
        if self._writer is not None:
            raise RuntimeError("the event bus is already attached to a store")
        self._writer = writer
        self._listener = listener

    async def flush(self) -> None:
        if self._writer is not None:
            await self._writer.flush()

    async def aclose(self) -> None:
        if self._listener is not None:
            await self._listener.aclose()
            self._listener = None
        if self._writer is not None:
            await self._writer.aclose()
            self._writer = None
