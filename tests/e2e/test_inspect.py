"""Audio vectors end to end: utterances spoken to a real server are kept per tenant (Qdrant local mode, sealed
with the tenant's key), found again by a recording played once more, replayed as derived data, and flagged when
anomalous; only for keys with `conversation:inspect`, only within their tenant, every read audited, and nothing
on disk holds audio or transcript text."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from dsp import OpusDecoder, OpusEncoder, resample
from router.defaults import build_default_router
from tests.helpers import SPEECH, speech
from voice.app import create_app
from voice.config import Settings
from voice.replay import replay_file
from voice.serving import running_server
from voice.tenants import hash_key

INSPECTOR, TALKER, OTHER = "sk-acme-inspect", "sk-acme-talk", "sk-globex-inspect"
ADMIN = "adm-inspect-test"
BOTH = ["realtime", "conversation:inspect"]


def _tenants(tmp_path: Path) -> str:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [
        {"id": "acme", "keys": [{"hash": hash_key(INSPECTOR), "capabilities": BOTH}, hash_key(TALKER)]},
        {"id": "globex", "keys": [{"hash": hash_key(OTHER), "capabilities": BOTH}]},
    ]}))
    return str(path)


def _played_again(name: str) -> bytes:
    """The recording once more: half the gain, a little noise, through Opus; as a WAV upload."""
    pcm, rate = speech(name)
    noisy = np.clip(pcm * 0.5 + np.random.default_rng(1).normal(0, 30, len(pcm)), -32768, 32767).astype(np.int16)
    enc, dec = OpusEncoder(), OpusDecoder()
    packets = enc.encode(resample(noisy, rate, 48000)) + enc.flush()
    out = io.BytesIO()
    sf.write(out, resample(np.concatenate([dec.decode(p) for p in packets]), 48000, 16000), 16000, format="WAV")
    return out.getvalue()


async def _say(url: str, key: str, path: Path, one: bool = True) -> tuple[str, str]:
    """One spoken file: (its user item, its conversation); `one=False`: the first of its items."""
    conversation: list[str] = []

    def sink(_name: str, ev: dict) -> None:
        if ev["type"] == "response.created":
            conversation.append(ev["response"]["conversation_id"])

    result = await replay_file(url, path, speed=0, api_key=key, sink=sink)
    items = [t.item_id for t in result.turns if t.item_id]
    assert items and (len(items) == 1 or not one), (path.name, result.turns)  # one utterance each
    return items[0], conversation[0]


@pytest.fixture()
async def server(tmp_path, monkeypatch):
    monkeypatch.setenv("SOMAGENT_ADMIN_KEY", ADMIN)
    settings = Settings(deployment_mode="test", tenants_file=_tenants(tmp_path), warmup=False,
                        audio_vectors=str(tmp_path / "vectors"), master_key=base64.b64encode(os.urandom(32)).decode())
    router = build_default_router(database_url=f"sqlite:///{tmp_path}/router.db", local=None, whisper=None,
                                  mode="test", admin_key=ADMIN)
    app = create_app(settings, router)
    async with running_server(app) as url:
        yield url, app, tmp_path


async def test_utterances_are_found_replayed_and_flagged_within_their_tenant_only(server):
    url, app, tmp_path = server
    mine = {name: await _say(url, INSPECTOR, SPEECH / f"{name}.wav")
            for name in ("goforward", "cards-001", "cards-003", "librivox-0890")}
    tone = tmp_path / "tone.wav"  # a hum: the analytics label it anomalous
    t = np.arange(16000 * 2) / 16000
    sf.write(tone, np.concatenate([(np.sin(2 * np.pi * 220 * t) * 12000).astype(np.int16),
                                   np.zeros(16000, np.int16)]), 16000)
    _, hum_conversation = await _say(url, TALKER, tone, one=False)  # another key of the tenant: the same store
    theirs = await _say(url, OTHER, SPEECH / "librivox-0870.wav")
    await app.state.server.vault.drain()

    auth = {"Authorization": f"Bearer {INSPECTOR}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        found = (await http.post("/v1/inspect/similar", content=_played_again("goforward.wav"), headers=auth)).json()
        assert "similar" in found, found
        ranked = [u["item_id"] for u in found["similar"]]
        assert ranked[0] == mine["goforward"][0]  # the same phrase, played again, comes first
        assert theirs[0] not in ranked  # another tenant's utterance is never among them
        near = (await http.get(f"/v1/inspect/utterances/{mine['cards-001'][0]}/similar", headers=auth)).json()
        assert "similar" in near, near
        order = [u["item_id"] for u in near["similar"]]
        # "ten of clubs": "seven of clubs" nearer than a sentence from a novel
        assert order.index(mine["cards-003"][0]) < order.index(mine["librivox-0890"][0]), (order, mine)

        replay = (await http.get(f"/v1/inspect/conversations/{mine['goforward'][1]}", headers=auth)).json()
        (utterance,) = replay["utterances"]
        assert utterance["item_id"] == mine["goforward"][0] and len(utterance["envelope_dbfs"]) > 5
        assert utterance["analytics"]["label"] in ("normal", "excited") and "transcript" not in utterance

        flagged = (await http.get("/v1/inspect/anomalies", headers=auth)).json()["anomalies"]
        assert flagged and {u["conversation_id"] for u in flagged} == {hum_conversation}
        assert all(u["reason"] == "label" for u in flagged) and mine["goforward"][0] not in str(flagged)

        # the other tenant's inspector sees none of it, the same as nothing at all
        other = {"Authorization": f"Bearer {OTHER}"}
        assert (await http.get(f"/v1/inspect/conversations/{mine['goforward'][1]}", headers=other)).status_code == 404
        assert (await http.get(f"/v1/inspect/utterances/{mine['goforward'][0]}/similar",
                               headers=other)).status_code == 404
        theirs_found = (await http.post("/v1/inspect/similar", content=_played_again("goforward.wav"),
                                        headers=other)).json()["similar"]
        assert [u["item_id"] for u in theirs_found] == [theirs[0]]
        # a key of the tenant without the capability is refused, as is an anonymous caller
        refused = await http.get("/v1/inspect/anomalies", headers={"Authorization": f"Bearer {TALKER}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "missing_capability"
        assert (await http.get("/v1/inspect/anomalies")).status_code == 401

        audit = (await http.get("/v1/audit", headers={"Authorization": f"Bearer {ADMIN}"})).json()["entries"]
    reads = [a for a in audit if a["action"].startswith("inspect.")]
    assert {a["action"] for a in reads} >= {"inspect.similar", "inspect.similar_upload", "inspect.conversation",
                                            "inspect.anomalies"}
    assert all(a["after"]["capability"] == "conversation:inspect" and len(a["after"]["items_sha256"]) == 64
               for a in reads)
    assert "sk-" not in json.dumps(reads) and "forward" not in json.dumps(reads)


async def test_nothing_on_disk_holds_audio_or_transcript_text(server):
    """The vectors' files, the keyring and the database (telemetry, events, audit) after a spoken turn and an
    inspection: no stretch of the recording, no word of its transcript, none of the derived data in the clear."""
    url, app, tmp_path = server
    item, conversation = await _say(url, INSPECTOR, SPEECH / "goforward.wav")
    await app.state.server.vault.drain()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.get(f"/v1/inspect/conversations/{conversation}",
                               headers={"Authorization": f"Bearer {INSPECTOR}"})).status_code == 200
    await app.state.server.router.aclose()  # the store's writers flush to the database
    pcm, _ = speech("goforward.wav")
    loud = pcm[np.argmax(np.abs(pcm)) - 16:][:32].tobytes()  # 32 samples from the loudest part of the recording
    blobs = [p.read_bytes() for p in (tmp_path / "vectors").rglob("*") if p.is_file()]
    blobs.append((tmp_path / "keyring.json").read_bytes())
    database = (tmp_path / "router.db").read_bytes()
    assert item.encode() in database or b"inspect.conversation" in database  # the database was written to
    blobs.append(database)
    assert blobs and sum(len(b) for b in blobs) > 1000
    for blob in blobs:
        assert loud not in blob  # no raw audio
        for word in (b"forward", b"meters", b"normal", b"envelope", b"label"):
            assert word not in blob  # no transcript, and the derived data sealed


async def test_retention_purges_what_is_older_than_the_tenants_days(server):
    url, app, _ = server
    item, _ = await _say(url, INSPECTOR, SPEECH / "goforward.wav")
    srv = app.state.server
    await srv.vault.drain()
    now = srv.vault.clock()
    assert (await srv.purge_expired(now))["acme"] == 0  # spoken just now: kept
    assert (await srv.purge_expired(now + 31 * 86400))["acme"] == 1  # past the default 30 days: gone
    assert await srv.vault.call(srv.vault.store.get, "acme", item) is None
