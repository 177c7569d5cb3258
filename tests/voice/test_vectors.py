"""voice/vectors.py: the store on its own (Qdrant local mode in a temporary directory)."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from dsp.embedding import DIM
from voice.keyring import Keyring, KeyringError
from voice.vectors import AudioVault, AudioVectorStore, UtteranceRecord, collection_for


def _unit(rng: np.random.Generator, centre: np.ndarray, spread: float) -> np.ndarray:
    v = centre + rng.normal(0, spread, DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _rec(tenant: str, item: str, vector: np.ndarray, at: float = 1000.0, label: str = "normal",
         persona: str | None = None, conversation: str = "conv_1", transcript: str | None = None) -> UtteranceRecord:
    return UtteranceRecord(tenant, item, conversation, persona, at, vector, [-30.0, -20.0],
                           {"label": label}, transcript)


@pytest.fixture()
def store(tmp_path):
    s = AudioVectorStore.open(str(tmp_path / "vectors"), Keyring(os.urandom(32), tmp_path / "keyring.json"))
    yield s
    s.close()


def test_each_tenant_has_its_own_collection_and_sees_only_its_points(store):
    rng = np.random.default_rng(0)
    v = _unit(rng, np.ones(DIM), 0.0)
    store.add(_rec("acme", "a1", v))
    store.add(_rec("globex", "g1", v))
    assert collection_for("acme") != collection_for("globex") and "acme" not in collection_for("acme")
    assert [u.item_id for u in store.similar("acme", v)] == ["a1"]
    assert [u.item_id for u in store.similar("globex", v)] == ["g1"]
    assert store.similar("initech", v) == [] and store.get("initech", "a1") is None
    assert store.get("globex", "a1") is None


def test_anomalies_are_far_from_the_population_or_labelled_and_purge_drops_the_old(store):
    rng = np.random.default_rng(1)
    centre = rng.normal(0, 1, DIM)
    for i in range(12):
        store.add(_rec("acme", f"n{i}", _unit(rng, centre, 0.1), at=1000.0 + i))
    store.add(_rec("acme", "odd", _unit(rng, -centre, 0.1), at=2000.0))  # the opposite direction
    store.add(_rec("acme", "hum", _unit(rng, centre, 0.1), at=2001.0, label="anomalous"))
    found = store.anomalies("acme")
    assert [u.item_id for u in found] == ["hum", "odd"]
    assert [u.reason for u in found] == ["label", "distance"]
    assert store.purge("acme", older_than=1006.0) == 6
    assert len(store.conversation("acme", "conv_1")) == 8


def test_transcripts_are_kept_only_when_retention_says_so_and_a_foreign_key_cannot_read(tmp_path):
    ring = Keyring(os.urandom(32), tmp_path / "keyring.json")
    rng = np.random.default_rng(2)
    v = _unit(rng, np.ones(DIM), 0.0)
    store = AudioVectorStore.open(str(tmp_path / "v1"), ring, keep_transcripts=False)
    store.add(_rec("acme", "a1", v, transcript="go forward"))
    assert store.get("acme", "a1").transcript is None
    store.close()
    keeping = AudioVectorStore.open(str(tmp_path / "v2"), ring, keep_transcripts=True)
    keeping.add(_rec("acme", "a1", v, transcript="go forward"))
    assert keeping.get("acme", "a1").transcript == "go forward"
    keeping.close()
    stranger = AudioVectorStore.open(str(tmp_path / "v2"), Keyring(os.urandom(32)))  # another master key
    with pytest.raises(KeyringError):
        stranger.get("acme", "a1")
    stranger.close()


async def test_the_vault_never_waits_and_drops_past_its_queue(store, monkeypatch):
    import voice.vectors as vectors

    monkeypatch.setattr(vectors, "MAX_QUEUE", 3)
    vault = AudioVault(store)
    rng = np.random.default_rng(3)
    accepted = [vault.submit(_rec("acme", f"i{i}", _unit(rng, np.ones(DIM), 0.5))) for i in range(10)]
    assert accepted.count(True) >= 3 and vault.dropped == accepted.count(False)
    await vault.drain()
    await asyncio.sleep(0)  # the write callbacks come back on the loop
    assert vault.written == accepted.count(True)
    await vault.aclose()
