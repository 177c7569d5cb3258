"""Key management over a real server: operators make, list, rotate and revoke keys; a key works at once, its
secret is shown once and stored hashed, a rotated or revoked secret stops at once, and every change is audited."""

from __future__ import annotations

import json

import httpx
import websockets

from router.defaults import build_default_router
from voice.app import create_app
from voice.client import ws_url
from voice.config import Settings
from voice.serving import running_server

ADMIN = {"Authorization": "Bearer adm-keys-test"}


async def _talks(url: str, key: str) -> str:
    """The first event a WebSocket with this key gets: session.created, or the refusal's code."""
    async with websockets.connect(ws_url(url), additional_headers={"Authorization": f"Bearer {key}"},
                                  open_timeout=30) as ws:
        first = json.loads(await ws.recv())
    return first["type"] if first["type"] != "error" else first["error"]["code"]


async def test_keys_are_made_listed_rotated_and_revoked_with_an_audit_trail(tmp_path):
    keys_file = tmp_path / "keys.json"
    router = build_default_router(database_url=None, local=None, whisper=None, mode="test", admin_key="adm-keys-test")
    app = create_app(Settings(deployment_mode="test", keys_file=str(keys_file), warmup=False), router)
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.post("/v1/admin/keys", json={"tenant": "acme"})).status_code == 401
        assert (await http.post("/v1/admin/keys", json={"tenant": "acme"},
                                headers={"Authorization": "Bearer sk-nope"})).status_code == 403
        bad = await http.post("/v1/admin/keys", json={"tenant": "acme", "capabilities": ["root"]}, headers=ADMIN)
        assert bad.status_code == 422 and "unknown capabilities" in bad.text

        made = await http.post("/v1/admin/keys", headers=ADMIN, json={
            "tenant": "acme", "capabilities": ["realtime", "conversation:inspect"], "name": "support app"})
        assert made.status_code == 201
        body = made.json()
        secret, key_id = body["key"], body["id"]
        assert await _talks(url, secret) == "session.created"  # works at once
        assert app.state.server.auth.check(secret).tenant == "acme"

        listed = (await http.get("/v1/admin/keys?tenant=acme", headers=ADMIN)).json()["keys"]
        assert [k["id"] for k in listed] == [key_id] and listed[0]["last4"] == secret[-4:]
        assert secret not in json.dumps(listed) and "hash" not in listed[0]
        stored = keys_file.read_text()
        assert secret not in stored and oct(keys_file.stat().st_mode & 0o777) == "0o600"

        rotated = (await http.post(f"/v1/admin/keys/{key_id}/rotate", headers=ADMIN)).json()
        assert rotated["id"] == key_id and rotated["key"] != secret
        assert await _talks(url, secret) == "invalid_api_key"  # the old secret stops at once
        assert await _talks(url, rotated["key"]) == "session.created"

        assert (await http.delete(f"/v1/admin/keys/{key_id}", headers=ADMIN)).json()["revoked_at"]
        assert await _talks(url, rotated["key"]) == "invalid_api_key"
        assert (await http.delete(f"/v1/admin/keys/{key_id}", headers=ADMIN)).status_code == 404

        audit = (await http.get("/v1/audit", headers=ADMIN)).json()["entries"]
    changes = [a for a in audit if a["action"].startswith("key.")]
    assert [a["action"] for a in changes] == ["key.create", "key.rotate", "key.revoke"]
    assert all(a["target"] == f"key:{key_id}" and a["after"]["tenant"] == "acme" for a in changes)
    assert secret not in json.dumps(audit) and rotated["key"] not in json.dumps(audit)


def test_a_key_made_through_one_worker_is_known_to_another_reading_the_same_file(tmp_path):
    from voice.keystore import KeyStore

    path = tmp_path / "keys.json"
    one, other = KeyStore(path), KeyStore(path)
    key, secret = one.create("acme", ["realtime"])
    other._checked = 0.0  # its once-a-second look at the file is due
    assert other.lookup(secret).id == key.id
    one.revoke(key.id)
    other._checked = 0.0
    assert other.lookup(secret) is None
