"""Persistence for the router: SQLAlchemy 2 Core, SQLite (default, ./data/somagent.db) or PostgreSQL.

Every admin change is written together with its audit entry in one transaction, so nothing is half
written. Telemetry, events and sticky choices arrive in batches from write-behind writers. Calls are
synchronous; the router runs them in worker threads.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from router.audit import AuditEntry
from router.catalog import Unit
from router.events import Event
from router.overrides import Override, Scope
from router.personas import PersonaSLA
from router.profiles import ModelProfile
from router.roles import Role
from router.sticky import StickyChoice
from router.store.schema import (
    NOTIFY_CHANNEL,
    NOTIFY_MAX_BYTES,
    VERSION_TABLE,
    admin_keys_t,
    audit_t,
    buckets_t,
    calls_t,
    events_t,
    overrides_t,
    personas_t,
    profiles_t,
    settings_t,
    sticky_t,
)
from router.telemetry import (
    NBINS,
    NF,
    SCALAR_NAMES,
    WINDOWS,
    CallRecord,
    Rollup,
    make_rollup,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK_ID = 0x50_4D_52_54  # pg_advisory_lock key: one migrating process at a time


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def jsonable(value: Any) -> Any:
    return json.loads(dumps(value))


@dataclass(frozen=True)
class Change:
    """One admin change: kind setting | profile | override | persona, its key, the new value (None
    deletes) and the audit entry written with it."""

    kind: str
    key: dict[str, Any]
    value: Any
    audit: AuditEntry


class StoredConfig:
    """What `load_config` returns: the persisted part of the routing state."""

    def __init__(self) -> None:
        self.settings: dict[str, Any] = {}
        self.profiles: dict[str, dict[Role, ModelProfile]] = {}
        self.overrides: list[Override] = []
        self.personas: dict[str, PersonaSLA] = {}


class RouterStore:
    def __init__(self, url: str, *, writer_id: str = "") -> None:
        self.url = sa.make_url(url)
        if self.url.drivername in ("postgresql", "postgres"):  # psycopg 3 is the driver this package ships
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.writer_id = writer_id
        self.dialect = self.url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        kwargs: dict[str, Any] = {}
        self._lock: threading.Lock | None = None
        if self.dialect == "sqlite":
            db = self.url.database
            if db and db != ":memory:":
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            else:
                kwargs["poolclass"] = sa.pool.StaticPool
                kwargs["connect_args"] = {"check_same_thread": False}
            self._lock = threading.Lock()  # SQLite has one writer; serialise here instead of busy-waiting
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = sa.create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def libpq_conninfo(self) -> str:
        """The URL as psycopg's own connect() wants it (for LISTEN)."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        if self._lock is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            with self._lock, self.engine.begin() as conn:
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        if self._lock is None:
            with self.engine.connect() as conn:
                yield conn
        else:
            with self._lock, self.engine.connect() as conn:
                yield conn

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction for the store's neighbours that keep their own tables (router.store.benchmarks)."""
        return self._tx()

    def reading(self) -> AbstractContextManager[Connection]:
        return self._read()

    # -- schema ---------------------------------------------------------------------------------
    def migrate(self) -> None:
        """Upgrade to the newest schema with alembic, built in code (no alembic.ini needed)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._migration_lock(), self._tx() as conn:
            if self.is_postgres:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Worker processes starting together migrate one at a time: PostgreSQL takes an advisory lock
        inside the transaction; a SQLite file gets an exclusive lock on a file beside it."""
        db = self.url.database if self.dialect == "sqlite" else None
        if not db or db == ":memory:":
            yield
            return
        import fcntl

        with open(f"{Path(db).expanduser()}.migrate.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def schema_revision(self) -> str | None:
        with self._read() as conn:
            try:
                return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            except sa.exc.DBAPIError:
                return None

    def dispose(self) -> None:
        self.engine.dispose()

    # -- configuration --------------------------------------------------------------------------
    def load_config(self) -> StoredConfig:
        out = StoredConfig()
        with self._read() as conn:
            for row in conn.execute(sa.select(settings_t)):
                out.settings[row.key] = row.value
            for row in conn.execute(sa.select(profiles_t)):
                out.profiles.setdefault(row.mode, {})[Role(row.role)] = ModelProfile.from_dict(row.profile)
            for row in conn.execute(sa.select(overrides_t)):
                out.overrides.append(
                    Override(
                        Scope(row.scope),
                        row.subject,
                        Role(row.role),
                        row.model,
                        bool(row.locked),
                        row.reason,
                        row.updated_by,
                        row.updated_at,
                    )
                )
            for row in conn.execute(sa.select(personas_t)):
                out.personas[row.persona] = PersonaSLA.from_dict(row.sla)
        return out

    def _audit(self, conn: Connection, entry: AuditEntry) -> int:
        result = conn.execute(
            audit_t.insert().values(
                ts=entry.ts,
                actor=entry.actor,
                action=entry.action,
                target=entry.target,
                before=jsonable(entry.before),
                after=jsonable(entry.after),
            )
        )
        return int(result.inserted_primary_key[0])

    def append_audit(self, entry: AuditEntry) -> int:
        """An audit entry of its own (a read that changes nothing: an inspection), committed at once."""
        with self.engine.begin() as conn:
            return self._audit(conn, entry)

    def _bump_version(self, conn: Connection, ts: float, actor: str) -> int:
        current = conn.execute(sa.select(settings_t.c.value).where(settings_t.c.key == "config_version")).scalar()
        version = int(current or 0) + 1
        conn.execute(settings_t.delete().where(settings_t.c.key == "config_version"))
        conn.execute(settings_t.insert().values(key="config_version", value=version, updated_at=ts, updated_by=actor))
        return version

    def apply_changes(self, changes: list[Change]) -> tuple[int, list[int]]:
        """Write admin changes, their audit entries and one new configuration version in one transaction:
        all of them or none. Returns (version, audit ids)."""
        audit_ids = []
        with self._tx() as conn:
            for change in changes:
                self._write_change(conn, change)
            last = changes[-1].audit
            version = self._bump_version(conn, last.ts, last.actor)
            for change in changes:
                audit_ids.append(self._audit(conn, change.audit))
        return version, audit_ids

    def _write_change(self, conn: Connection, change: Change) -> None:
        kind, key, value, audit = change.kind, change.key, change.value, change.audit
        if kind == "setting":
            conn.execute(settings_t.delete().where(settings_t.c.key == key["key"]))
            if value is not None:
                conn.execute(
                    settings_t.insert().values(
                        key=key["key"], value=jsonable(value), updated_at=audit.ts, updated_by=audit.actor
                    )
                )
        elif kind == "profile":
            conn.execute(profiles_t.delete().where(profiles_t.c.mode == key["mode"], profiles_t.c.role == key["role"]))
            if value is not None:
                conn.execute(
                    profiles_t.insert().values(
                        mode=key["mode"],
                        role=key["role"],
                        profile=jsonable(value),
                        updated_at=audit.ts,
                        updated_by=audit.actor,
                    )
                )
        elif kind == "override":
            conn.execute(
                overrides_t.delete().where(
                    overrides_t.c.scope == key["scope"],
                    overrides_t.c.subject == key["subject"],
                    overrides_t.c.role == key["role"],
                )
            )
            if value is not None:
                ov: Override = value
                conn.execute(
                    overrides_t.insert().values(
                        scope=ov.scope.value,
                        subject=ov.subject,
                        role=ov.role.value,
                        model=ov.model,
                        locked=ov.locked,
                        reason=ov.reason,
                        updated_at=ov.updated_at,
                        updated_by=ov.updated_by,
                    )
                )
        elif kind == "persona":
            conn.execute(personas_t.delete().where(personas_t.c.persona == key["persona"]))
            if value is not None:
                conn.execute(
                    personas_t.insert().values(
                        persona=key["persona"], sla=jsonable(value), updated_at=audit.ts, updated_by=audit.actor
                    )
                )
        else:
            raise ValueError(f"unknown change kind {kind!r}")

    def audit_since(self, since: float, limit: int = 1000) -> list[AuditEntry]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(audit_t).where(audit_t.c.ts >= since).order_by(audit_t.c.ts, audit_t.c.id).limit(limit)
            ).all()
        return [AuditEntry(r.ts, r.actor, r.action, r.target, r.before, r.after, int(r.id)) for r in rows]

    # -- admin keys -----------------------------------------------------------------------------
    def ensure_admin_key(self, name: str, key_hash: str, now: float) -> None:
        with self._tx() as conn:
            exists = conn.execute(sa.select(admin_keys_t.c.id).where(admin_keys_t.c.key_hash == key_hash)).first()
            if exists is None:
                conn.execute(admin_keys_t.insert().values(name=name, key_hash=key_hash, created_at=now))

    def admin_keys(self) -> list[tuple[str, str]]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(admin_keys_t.c.name, admin_keys_t.c.key_hash).where(admin_keys_t.c.revoked_at.is_(None))
            ).all()
        return [(r.name, r.key_hash) for r in rows]

    # -- telemetry ------------------------------------------------------------------------------
    def write_telemetry(self, records: list[CallRecord], buckets: list[dict[str, Any]]) -> None:
        """Insert call records and roll-up bucket rows in one transaction.

        Call records go through the driver's executemany directly: this is the write-behind hot path
        and SQLAlchemy's per-row parameter processing would triple its cost.
        """
        with self._tx() as conn:
            if records:
                mark = "?" if self.dialect == "sqlite" else "%s"
                sql = (
                    f"INSERT INTO router_call_records ({', '.join(_RECORD_COLUMNS)}) "
                    f"VALUES ({', '.join([mark] * len(_RECORD_COLUMNS))})"
                )
                cursor = conn.connection.driver_connection.cursor()
                try:
                    cursor.executemany(sql, [_record_tuple(r) for r in records])
                finally:
                    cursor.close()
            if buckets:
                conn.execute(buckets_t.insert(), [{**b, "writer": self.writer_id} for b in buckets])

    def count_call_records(self) -> int:
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(calls_t)).scalar() or 0)

    def _bucket_rows(self, conn: Connection, where: list[Any]) -> list[Any]:
        cols = [
            buckets_t.c.role,
            buckets_t.c.model,
            buckets_t.c.start_minute,
            buckets_t.c.unit,
            buckets_t.c.last_ts,
            *[buckets_t.c[n] for n in SCALAR_NAMES],
            buckets_t.c.latency_hist,
            buckets_t.c.ttft_hist,
        ]
        return conn.execute(sa.select(*cols).where(*where)).all()

    def rehydration_buckets(self, now: float) -> list[tuple[str, str, str, int, str, Any, Any, Any, float]]:
        """What rebuilds the in-memory rings at start: minute buckets of the last hour (minute ring),
        hour buckets of the last day's closed hours plus the current hour's minute buckets (hour ring).

        Rows: (ring, role, model, start_minute, unit, scalars, latency hist, ttft hist, last_ts).
        """
        now_min = int(now // 60)
        hour_start = (now_min // 60) * 60
        out = []
        with self._read() as conn:
            minute_rows = self._bucket_rows(
                conn, [buckets_t.c.span_minutes == 1, buckets_t.c.start_minute > now_min - 60]
            )
            hour_rows = self._bucket_rows(
                conn,
                [
                    buckets_t.c.span_minutes == 60,
                    buckets_t.c.start_minute >= hour_start - 24 * 60,
                    buckets_t.c.start_minute < hour_start,
                ],
            )
        for ring, rows in (
            ("minutes", minute_rows),
            ("hours", hour_rows),
            ("hours", [r for r in minute_rows if r[2] >= hour_start]),
        ):
            for r in rows:
                scalars = np.array(r[5 : 5 + NF], dtype=float)
                lat = np.frombuffer(r[5 + NF], dtype=np.int32).astype(np.int64)
                ttft = np.frombuffer(r[6 + NF], dtype=np.int32).astype(np.int64)
                out.append((ring, r[0], r[1], int(r[2]), r[3], scalars, lat, ttft, float(r[4])))
        return out

    def rollups(self, window: str, now: float, role: Role | None = None) -> list[Rollup]:
        """Roll-ups from the stored buckets (every process's calls, closed buckets): whole hours inside the
        window from hour buckets, the edges from minute buckets. Counters are summed in SQL and histograms
        as arrays, so the cost follows the number of buckets in the window, never the number of calls.
        """
        now_min = int(now // 60)
        since = now_min - WINDOWS[window] // 60 + 1
        h_start = -(-since // 60) * 60  # first whole hour inside the window
        h_end = (now_min // 60) * 60  # the current (open) hour starts here
        c = buckets_t.c
        if h_end > h_start:
            scope = sa.or_(
                sa.and_(c.span_minutes == 60, c.start_minute >= h_start, c.start_minute < h_end),
                sa.and_(c.span_minutes == 1, c.start_minute >= since, c.start_minute < h_start),
                sa.and_(c.span_minutes == 1, c.start_minute >= h_end, c.start_minute <= now_min),
            )
        else:
            scope = sa.and_(c.span_minutes == 1, c.start_minute >= since, c.start_minute <= now_min)
        where = [scope] if role is None else [scope, c.role == role.value]
        sums = (
            sa.select(
                c.role, c.model, sa.func.max(c.unit), sa.func.max(c.last_ts), *[sa.func.sum(c[n]) for n in SCALAR_NAMES]
            )
            .where(*where)
            .group_by(c.role, c.model)
        )
        hists = sa.select(c.role, c.model, c.latency_hist, c.ttft_hist).where(*where)
        with self._read() as conn:
            totals = conn.execute(sums).all()
            blobs: dict[tuple[str, str], tuple[list[bytes], list[bytes]]] = {}
            for r_role, r_model, lat, ttft in conn.execute(hists):
                entry = blobs.get((r_role, r_model))
                if entry is None:
                    entry = blobs[(r_role, r_model)] = ([], [])
                entry[0].append(lat)
                entry[1].append(ttft)
        out = []
        for row in totals:
            try:
                r_role = Role(row[0])
            except ValueError:
                continue
            lat_blobs, ttft_blobs = blobs.get((row[0], row[1]), ([], []))
            lat = np.frombuffer(b"".join(lat_blobs), dtype=np.int32).reshape(-1, NBINS).sum(axis=0)
            ttft = np.frombuffer(b"".join(ttft_blobs), dtype=np.int32).reshape(-1, NBINS).sum(axis=0)
            out.append(
                make_rollup(
                    r_role, row[1], window, np.array(row[4 : 4 + NF], dtype=float), lat, ttft, Unit(row[2]), row[3]
                )
            )
        return sorted(out, key=lambda r: (r.role.value, r.model))

    def purge_buckets(self, minute_buckets_before: float) -> int:
        """Minute buckets are only needed for the last day's edges; hour buckets are kept."""
        with self._tx() as conn:
            return (
                conn.execute(
                    buckets_t.delete().where(
                        buckets_t.c.span_minutes == 1, buckets_t.c.start_minute < int(minute_buckets_before // 60)
                    )
                ).rowcount
                or 0
            )

    # -- events ---------------------------------------------------------------------------------
    def write_events(self, events: list[Event], notify: bool) -> None:
        """Persist events; on PostgreSQL also NOTIFY them (delivered at commit, after the rows exist)."""
        if not events:
            return
        rows = [
            {"id": e.id, "ts": e.ts, "topic": e.topic, "origin": e.origin, "payload": jsonable(e.payload)}
            for e in events
        ]
        with self._tx() as conn:
            conn.execute(events_t.insert(), rows)
            if notify and self.is_postgres:
                messages = []
                for e, row in zip(events, rows, strict=True):
                    message = dumps(
                        {"id": e.id, "topic": e.topic, "ts": e.ts, "origin": e.origin, "payload": row["payload"]}
                    )
                    if len(message.encode()) > NOTIFY_MAX_BYTES:
                        message = dumps({"id": e.id, "topic": e.topic, "ts": e.ts, "origin": e.origin, "ref": True})
                    messages.append(message)
                # one round trip for the batch; delivered in this order when the transaction commits
                conn.execute(
                    sa.text(
                        "SELECT pg_notify(:c, m) FROM unnest(CAST(:ms AS text[])) WITH ORDINALITY AS t(m, i) ORDER BY i"
                    ),
                    {"c": NOTIFY_CHANNEL, "ms": messages},
                )

    def get_event(self, event_id: str) -> Event | None:
        with self._read() as conn:
            r = conn.execute(sa.select(events_t).where(events_t.c.id == event_id)).first()
        return None if r is None else Event(r.topic, r.payload, id=r.id, ts=r.ts, origin=r.origin)

    def events_since(self, since: float, topic: str | None = None, limit: int = 1000, *,
                     topics: Collection[str] | None = None, not_from: str | None = None) -> list[Event]:
        query = sa.select(events_t).where(events_t.c.ts >= since)
        if topic is not None:
            query = query.where(events_t.c.topic == topic)
        if topics is not None:
            query = query.where(events_t.c.topic.in_(sorted(topics)))
        if not_from is not None:
            query = query.where(events_t.c.origin != not_from)
        with self._read() as conn:
            rows = conn.execute(query.order_by(events_t.c.ts).limit(limit)).all()
        return [Event(r.topic, r.payload, id=r.id, ts=r.ts, origin=r.origin) for r in rows]

    def purge_events(self, before: float) -> int:
        with self._tx() as conn:
            return conn.execute(events_t.delete().where(events_t.c.ts < before)).rowcount or 0

    # -- sticky conversations -------------------------------------------------------------------
    def put_sticky(self, choices: list[StickyChoice]) -> None:
        latest: dict[tuple[str, str], StickyChoice] = {}
        for c in choices:
            latest[(c.conversation_id, c.role.value)] = c
        if not latest:
            return
        with self._tx() as conn:
            for conv, role in latest:
                conn.execute(sticky_t.delete().where(sticky_t.c.conversation_id == conv, sticky_t.c.role == role))
            conn.execute(sticky_t.insert(), [c.to_row() for c in latest.values()])

    def get_sticky(self, conversation_id: str) -> list[StickyChoice]:
        with self._read() as conn:
            rows = conn.execute(sa.select(sticky_t).where(sticky_t.c.conversation_id == conversation_id)).all()
        return [StickyChoice.from_row(r) for r in rows]


_RECORD_COLUMNS = (
    "ts",
    "role",
    "model",
    "outcome",
    "latency_ms",
    "ttft_ms",
    "units_in",
    "units_out",
    "unit",
    "units_estimated",
    "cost",
    "tenant",
    "persona",
    "conversation_id",
    "source",
    "error",
)


def _record_tuple(r: CallRecord) -> tuple[Any, ...]:
    return (
        r.ts,
        r.role.value,
        r.model,
        r.outcome.value,
        r.latency_ms,
        r.ttft_ms,
        r.units_in,
        r.units_out,
        r.unit.value,
        r.units_estimated,
        r.cost,
        r.tenant,
        r.persona,
        r.conversation_id,
        r.source,
        r.error[:2000],
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
