"""Other worker processes' events, delivered to the local bus: PostgreSQL LISTEN, or polling on SQLite.

Notifications carry the event itself, or only its id when it is too big for NOTIFY (then the row,
committed before the notification is delivered, is read back). A lost connection is re-opened with
back-off; events published meanwhile are in the events table, not replayed. `attach_bus` is how the
router's composition root connects an event bus to the store: the bus never imports the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection

import psycopg

from adapters.aio import cancel_and_wait
from router.events import Event, EventBus
from router.store.database import RouterStore
from router.store.schema import NOTIFY_CHANNEL
from router.store.writer import BatchWriter

log = logging.getLogger(__name__)


class PgEventListener:
    def __init__(
        self,
        conninfo: str,
        channel: str,
        instance_id: str,
        *,
        on_event: Callable[[Event], None],
        fetch: Callable[[str], Event | None],
    ) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._instance_id = instance_id
        self._on_event = on_event
        self._fetch = fetch  # synchronous store read, run in a thread
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection | None = None
        self.received = 0

    async def start(self) -> None:
        """Connect and LISTEN before returning, so events published after start() are not missed."""
        self._conn = await self._connect()
        self._task = asyncio.create_task(self._run(), name="pg-event-listener")

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        await conn.execute(f'LISTEN "{self._channel}"')
        return conn

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await self._connect()
                    backoff = 0.5
                async for note in self._conn.notifies():
                    await self._handle(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: re-open with back-off
                log.warning("event listener lost its connection (%s); reconnecting in %.1f s", exc, backoff)
                if self._conn is not None:
                    await self._conn.close()
                self._conn = None
                await asyncio.sleep(backoff)
                backoff = min(30.0, backoff * 2)

    async def _handle(self, raw: str) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            log.warning("ignoring a malformed event notification")
            return
        if data.get("origin") == self._instance_id:
            return
        self.received += 1
        if data.get("ref"):
            event = await asyncio.to_thread(self._fetch, data["id"])
            if event is None:
                return
        else:
            event = Event(data["topic"], data["payload"], id=data["id"], ts=data["ts"], origin=data["origin"])
        self._on_event(event)

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class SqliteEventPoller:
    """Reads the events table every `interval_s` for other processes' events (SQLite has no NOTIFY).

    Events are written behind, so one may land with a timestamp a little older than rows already read:
    each poll re-reads an `overlap_s` window and skips the ids it has delivered. Only `topics` are read (the
    router's: configuration changes and call records), and only other processes' rows: the poll runs in a
    thread, and building many events there would hold the GIL the audio path needs."""

    def __init__(self, store: RouterStore, instance_id: str, *, on_event: Callable[[Event], None],
                 interval_s: float, topics: Collection[str] | None = None, overlap_s: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._topics = None if topics is None else frozenset(topics)
        self._instance_id = instance_id
        self._on_event = on_event
        self._interval_s = interval_s
        self._overlap_s = overlap_s
        self._clock = clock
        self._since = 0.0
        self._seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.received = 0

    async def start(self) -> None:
        self._since = self._clock()  # from now on, as LISTEN: what came before is in the stored config
        self._task = asyncio.create_task(self._run(), name="sqlite-event-poller")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                events = await asyncio.to_thread(self._store.events_since, self._since - self._overlap_s, None, 5000,
                                                 topics=self._topics, not_from=self._instance_id)
            except Exception as exc:  # a locked or vanished database: try again next time
                log.warning("polling the events table failed: %s", exc)
                continue
            self.poll_result(events)

    def poll_result(self, events: list[Event]) -> None:
        for event in events:
            self._since = max(self._since, event.ts)
            if event.origin == self._instance_id or event.id in self._seen:
                continue
            self._seen[event.id] = event.ts
            self.received += 1
            self._on_event(event)
        horizon = self._since - 2 * self._overlap_s
        self._seen = {k: ts for k, ts in self._seen.items() if ts >= horizon}

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None


async def attach_bus(bus: EventBus, store: RouterStore, *, listen: bool = True, flush_interval_s: float = 0.2,
                     poll_interval_s: float | None = None, poll_topics: Collection[str] | None = None) -> None:
    """Persist the bus's events to `store` from now on (written behind); relay them between processes on
    PostgreSQL (LISTEN), and on SQLite when `poll_interval_s` is given (`serve --workers N` sets it; only
    `poll_topics` then, when given). The bus
    owns the writer and listener from here on: its aclose() stops them."""
    if bus.attached:
        raise RuntimeError("the event bus is already attached to a store")
    notify = store.is_postgres
    writer: BatchWriter[Event] = BatchWriter(
        lambda batch, _final: store.write_events(batch, notify),
        name="events",
        interval_s=flush_interval_s,
        max_batch=1000,
    )
    listener: PgEventListener | SqliteEventPoller | None = None
    if store.is_postgres and listen:
        listener = PgEventListener(
            store.libpq_conninfo(), NOTIFY_CHANNEL, bus.instance_id, on_event=bus.deliver, fetch=store.get_event
        )
    elif listen and poll_interval_s:
        listener = SqliteEventPoller(store, bus.instance_id, on_event=bus.deliver, interval_s=poll_interval_s,
                                     topics=poll_topics, clock=bus.clock)
    bus.attach(writer, listener)
    writer.start()
    if listener is not None:
        await listener.start()
