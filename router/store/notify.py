"""PostgreSQL LISTEN for the event bus: other worker processes' events, delivered locally.

Notifications carry the event itself, or only its id when it is too big for NOTIFY (then the row,
committed before the notification is delivered, is read back). A lost connection is re-opened with
back-off; events published meanwhile are in the events table, not replayed. `attach_bus` is how the
router's composition root connects an event bus to the store: the bus never imports the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

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


async def attach_bus(bus: EventBus, store: RouterStore, *, listen: bool = True, flush_interval_s: float = 0.2) -> None:
    """Persist the bus's events to `store` from now on (written behind); on PostgreSQL also relay them
    between processes. The bus owns the writer and listener from here on: its aclose() stops them."""
    if bus.attached:
        raise RuntimeError("the event bus is already attached to a store")
    notify = store.is_postgres
    writer: BatchWriter[Event] = BatchWriter(
        lambda batch, _final: store.write_events(batch, notify),
        name="events",
        interval_s=flush_interval_s,
        max_batch=1000,
    )
    listener = None
    if store.is_postgres and listen:
        listener = PgEventListener(
            store.libpq_conninfo(), NOTIFY_CHANNEL, bus.instance_id, on_event=bus.deliver, fetch=store.get_event
        )
    bus.attach(writer, listener)
    writer.start()
    if listener is not None:
        await listener.start()
