"""Per-tenant audio vectors in Qdrant: one point per user utterance, for similarity search, replay of derived data
and anomaly detection. Never the waveform.

What a point holds: the utterance's vector (dsp/embedding.py, 92 statistics; plain, since search needs it, and it
cannot be turned back into audio), the ids the tenant filters by (`item_id`, `conversation_id`, `persona_id`, the
time), and one sealed blob (voice/keyring.py, the tenant's data key) with the energy envelope, the analytics
(loudness, rate, label) and, where the tenant's retention keeps transcripts, the transcript. One collection per
tenant (`audio-<hash of the tenant id>`): no query can reach another tenant's points, whatever its filter.

`AudioVectorStore` is synchronous (qdrant-client's local mode is SQLite files under a directory; a server URL for
scale); `AudioVault` runs it on one thread of its own, off the event loop: utterances go through a bounded queue
(a full queue drops the newest and counts it: the conversation never waits for its analytics), reads are awaited.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from dsp.embedding import DIM
from voice.keyring import Keyring

log = logging.getLogger(__name__)
POINT_NAMESPACE = uuid.UUID("5f0c9a52-8b7e-4d0e-9c61-3a2f1b7d4e10")
MAX_QUEUE = 1000
MAX_SCAN = 10_000  # points read for one conversation's replay or one anomaly pass


@dataclass(frozen=True)
class UtteranceRecord:
    tenant: str
    item_id: str
    conversation_id: str
    persona_id: str | None
    at: float
    vector: np.ndarray
    envelope: list[float]
    analytics: dict[str, Any]
    transcript: str | None = None


@dataclass
class StoredUtterance:
    item_id: str
    conversation_id: str
    persona_id: str | None
    at: float
    envelope: list[float] = field(default_factory=list)
    analytics: dict[str, Any] = field(default_factory=dict)
    transcript: str | None = None
    score: float | None = None  # similarity to the query, or the anomaly's z-score
    reason: str | None = None  # an anomaly's: "label" (the analytics said anomalous) or "distance"
    vector: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {"item_id": self.item_id, "conversation_id": self.conversation_id, "persona_id": self.persona_id,
               "at": self.at, "envelope_dbfs": self.envelope, "analytics": self.analytics}
        if self.transcript is not None:
            out["transcript"] = self.transcript
        if self.score is not None:
            out["score"] = round(self.score, 4)
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def is_server_url(location: str) -> bool:
    """A Qdrant server's URL, rather than a directory for local mode."""
    return location.startswith(("http://", "https://"))


def key_dir(location: str) -> Path:
    """Where the keyring (and developer-light's own master key) live: beside a local store, else ./data."""
    return Path("data") if is_server_url(location) else Path(location).parent


def collection_for(tenant: str) -> str:
    return "audio-" + hashlib.sha256(tenant.encode()).hexdigest()[:24]


class AudioVectorStore:
    def __init__(self, client: QdrantClient, keyring: Keyring, keep_transcripts: bool = False) -> None:
        self._client = client
        self._keyring = keyring
        self.keep_transcripts = keep_transcripts
        self._known: set[str] = set()

    @classmethod
    def open(cls, location: str, keyring: Keyring, keep_transcripts: bool = False) -> AudioVectorStore:
        """`location`: a directory (local mode) or an http(s) URL of a Qdrant server."""
        client = QdrantClient(url=location) if is_server_url(location) else QdrantClient(path=location)
        return cls(client, keyring, keep_transcripts)

    def close(self) -> None:
        self._client.close()

    def _collection(self, tenant: str, create: bool) -> str | None:
        name = collection_for(tenant)
        if name in self._known:
            return name
        if self._client.collection_exists(name):
            self._known.add(name)
            return name
        if not create:
            return None
        self._client.create_collection(name, vectors_config=models.VectorParams(size=DIM,
                                                                                distance=models.Distance.COSINE))
        self._known.add(name)
        return name

    def add(self, rec: UtteranceRecord) -> None:
        name = self._collection(rec.tenant, create=True)
        secret = {"envelope": [round(float(v), 2) for v in rec.envelope], "analytics": rec.analytics}
        if self.keep_transcripts and rec.transcript is not None:
            secret["transcript"] = rec.transcript
        sealed = self._keyring.seal(rec.tenant, json.dumps(secret).encode(), aad=rec.item_id)
        point = models.PointStruct(
            id=str(uuid.uuid5(POINT_NAMESPACE, f"{rec.tenant}/{rec.item_id}")),
            vector=[float(v) for v in rec.vector],
            payload={"item_id": rec.item_id, "conversation_id": rec.conversation_id, "persona_id": rec.persona_id,
                     "at": rec.at, "sealed": sealed})
        self._client.upsert(name, points=[point])

    def _open(self, tenant: str, payload: dict[str, Any], score: float | None = None,
              vector: Any = None) -> StoredUtterance:
        secret = json.loads(self._keyring.open(tenant, payload["sealed"], aad=payload["item_id"]))
        return StoredUtterance(payload["item_id"], payload["conversation_id"], payload.get("persona_id"),
                               float(payload["at"]), envelope=secret.get("envelope", []),
                               analytics=secret.get("analytics", {}), transcript=secret.get("transcript"),
                               score=score, vector=None if vector is None else np.asarray(vector, dtype=np.float32))

    def get(self, tenant: str, item_id: str) -> StoredUtterance | None:
        name = self._collection(tenant, create=False)
        if name is None:
            return None
        found = self._client.retrieve(name, ids=[str(uuid.uuid5(POINT_NAMESPACE, f"{tenant}/{item_id}"))],
                                      with_payload=True, with_vectors=True)
        return self._open(tenant, found[0].payload, vector=found[0].vector) if found else None

    def similar(self, tenant: str, vector: np.ndarray, limit: int = 5, persona_id: str | None = None,
                exclude_item: str | None = None) -> list[StoredUtterance]:
        name = self._collection(tenant, create=False)
        if name is None:
            return []
        must = [models.FieldCondition(key="persona_id", match=models.MatchValue(value=persona_id))] \
            if persona_id else []
        must_not = [models.FieldCondition(key="item_id", match=models.MatchValue(value=exclude_item))] \
            if exclude_item else []
        hits = self._client.query_points(name, query=[float(v) for v in vector], limit=limit, with_payload=True,
                                         query_filter=models.Filter(must=must, must_not=must_not)).points
        return [self._open(tenant, h.payload, score=float(h.score)) for h in hits]

    def _scan(self, tenant: str, flt: models.Filter | None, vectors: bool = False) -> list[Any]:
        name = self._collection(tenant, create=False)
        if name is None:
            return []
        points, offset = [], None
        while len(points) < MAX_SCAN:
            batch, offset = self._client.scroll(name, scroll_filter=flt, limit=256, offset=offset,
                                                with_payload=True, with_vectors=vectors)
            points.extend(batch)
            if offset is None:
                break
        return points[:MAX_SCAN]

    def conversation(self, tenant: str, conversation_id: str) -> list[StoredUtterance]:
        flt = models.Filter(must=[models.FieldCondition(key="conversation_id",
                                                        match=models.MatchValue(value=conversation_id))])
        items = [self._open(tenant, p.payload) for p in self._scan(tenant, flt)]
        return sorted(items, key=lambda u: u.at)

    def anomalies(self, tenant: str, persona_id: str | None = None, limit: int = 20,
                  z: float = 2.5) -> list[StoredUtterance]:
        """Utterances far from their population (the tenant's, or the persona's): cosine distance to the
        population's mean direction more than `z` standard deviations above the mean distance (with 5 or more
        in the population), and every one the analytics labelled "anomalous"; labelled ones first, then the
        farthest, `score` the z-score and `reason` which it was."""
        flt = models.Filter(must=[models.FieldCondition(key="persona_id", match=models.MatchValue(
            value=persona_id))]) if persona_id else None
        points = self._scan(tenant, flt, vectors=True)
        if not points:
            return []
        vectors = np.asarray([p.vector for p in points], dtype=np.float64)
        centre = vectors.mean(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        dist = 1.0 - vectors @ centre
        spread = float(dist.std()) or 1e-12
        scores = (dist - float(dist.mean())) / spread
        out = []
        for p, score in zip(points, scores, strict=True):
            item = self._open(tenant, p.payload)
            labelled = item.analytics.get("label") == "anomalous"
            if labelled or (len(points) >= 5 and score > z):
                item.score, item.reason = float(score), "label" if labelled else "distance"
                out.append(item)
        return sorted(out, key=lambda u: (u.reason != "label", -(u.score or 0.0)))[:limit]

    def purge(self, tenant: str, older_than: float) -> int:
        """Delete the tenant's points older than `older_than` (epoch seconds); how many went."""
        flt = models.Filter(must=[models.FieldCondition(key="at", range=models.Range(lt=older_than))])
        points = self._scan(tenant, flt)
        name = self._collection(tenant, create=False)
        if points and name is not None:
            self._client.delete(name, points_selector=models.PointIdsList(points=[p.id for p in points]))
        return len(points)


class AudioVault:
    """The store on a thread of its own: `submit` never waits; reads are awaited off the loop."""

    def __init__(self, store: AudioVectorStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="audio-vault")
        self._pending = 0
        self.dropped = 0
        self.written = 0

    def submit(self, rec: UtteranceRecord) -> bool:
        if self._pending >= MAX_QUEUE:
            self.dropped += 1
            return False
        self._pending += 1
        future = self._pool.submit(self.store.add, rec)
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._written, f))
        return True

    def _written(self, future: concurrent.futures.Future) -> None:
        self._pending -= 1
        failure = future.exception()
        if failure is not None:
            log.error("storing an utterance's vector failed: %r", failure)
        else:
            self.written += 1

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def drain(self) -> None:
        """Until every submitted utterance is written (tests, shutdown)."""
        await self.call(lambda: None)

    async def aclose(self) -> None:
        await self.drain()
        await self.call(self.store.close)
        self._pool.shutdown(wait=False)
