"""Tenancy over a real server: two tenants from a tenants file (keys stored hashed). Calls, sessions, sidebands,
quotas and the admin API of one tenant are refused to the other, and a client secret is its minter's tenant's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.test_sideband import WAIT_S, auth, closed, connect, new_call, recv
from voice.app import create_app
from voice.client import ws_url
from voice.config import Settings
from voice.serving import running_server
from voice.tenants import hash_key

ACME_1, ACME_2, GLOBEX = "sk-acme-first-0001", "sk-acme-second-0001", "sk-globex-0001"  # same last 4: no matter
ADMIN = "adm-tenancy-test"


@asynccontextmanager
async def server(tmp_path, monkeypatch) -> AsyncIterator[tuple[str, Any]]:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [
        {"id": "acme", "keys": [hash_key(ACME_1), hash_key(ACME_2)], "max_calls": 2},
        {"id": "globex", "keys": [hash_key(GLOBEX)], "max_sessions": 1},
    ]}))
    monkeypatch.setenv("SOMAGENT_ADMIN_KEY", ADMIN)
    app = create_app(Settings(deployment_mode="test", tenants_file=str(path), warmup=False))
    async with running_server(app) as url:
        yield url, app


async def test_a_call_is_seen_and_hung_up_only_by_its_own_tenant(tmp_path, monkeypatch):
    async with server(tmp_path, monkeypatch) as (url, app):
        call = await new_call(url, app, ACME_1)
        async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as http:
            unknown = await http.get("/v1/realtime/calls/rtc_nope", headers=auth(GLOBEX))
            other = await http.get(f"/v1/realtime/calls/{call.id}", headers=auth(GLOBEX))
            assert other.status_code == unknown.status_code == 404  # the same answer as for no call at all
            assert other.json()["error"]["code"] == "call_not_found"
            assert (await http.delete(f"/v1/realtime/calls/{call.id}", headers=auth(GLOBEX))).status_code == 404
            assert (await http.post(f"/v1/realtime/calls/{call.id}/hangup", headers=auth(GLOBEX))).status_code == 404
            assert not call.closed
            mine = await http.get(f"/v1/realtime/calls/{call.id}", headers=auth(ACME_2))  # another key, same tenant
            assert mine.status_code == 200 and mine.json()["id"] == call.id
        async with connect(url, call.id, GLOBEX) as sb:
            assert (await recv(sb))["error"]["code"] == "call_not_found"
            assert (await closed(sb)).rcvd.code == 1008
        async with connect(url, call.id, ACME_2) as sb:  # the tenant's other key attaches
            await sb.send(json.dumps({"type": "session.update", "session": {"instructions": "Hi."}}))
            assert (await recv(sb))["type"] == "session.updated"
        assert call.session.ctx.tenant == "acme"  # the router sees the tenant, for its overrides
        async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as http:
            assert (await http.delete(f"/v1/realtime/calls/{call.id}", headers=auth(ACME_2))).status_code == 200


async def test_client_secrets_count_against_their_minters_call_quota(tmp_path, monkeypatch):
    """A 2-call tenant once held 6 calls by minting secrets: each secret was a tenant of its own."""
    async with server(tmp_path, monkeypatch) as (url, app):
        async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as http:
            minted = await http.post("/v1/realtime/client_secrets", headers=auth(ACME_1), json={})
            secret = minted.json()["value"]
        first = await new_call(url, app, ACME_1)
        by_secret = await new_call(url, app, secret)
        assert by_secret.principal.tenant == first.principal.tenant == "acme"
        with pytest.raises(AssertionError, match="too_many_calls"):
            await new_call(url, app, ACME_2)
        other = await new_call(url, app, GLOBEX)  # another tenant's quota is its own
        assert other.principal.tenant == "globex"
        await first.close("hangup")
        assert (await new_call(url, app, secret)).principal.tenant == "acme"  # room again


async def test_a_tenants_session_limit_refuses_its_next_session_and_no_one_elses(tmp_path, monkeypatch):
    async with server(tmp_path, monkeypatch) as (url, app):
        endpoint = ws_url(url)
        async with websockets.connect(endpoint, additional_headers=auth(GLOBEX), open_timeout=WAIT_S) as first:
            assert (await recv(first))["type"] == "session.created"
            async with websockets.connect(endpoint, additional_headers=auth(GLOBEX), open_timeout=WAIT_S) as second:
                refused = await recv(second)
                assert refused["error"]["code"] == "too_many_sessions"
                assert (await closed(second)).rcvd.code == 1008
            async with websockets.connect(endpoint, additional_headers=auth(ACME_1), open_timeout=WAIT_S) as a1, \
                    websockets.connect(endpoint, additional_headers=auth(ACME_2), open_timeout=WAIT_S) as a2:
                assert (await recv(a1))["type"] == (await recv(a2))["type"] == "session.created"
                tenants = sorted(s.ctx.tenant for s in app.state.server.sessions.values())
                assert tenants == ["acme", "acme", "globex"]
            await first.send(json.dumps({"type": "session.update", "session": {"instructions": "Still here."}}))
            assert (await recv(first))["type"] == "session.updated"  # the admitted session is untouched


async def test_tenant_keys_reach_no_admin_route(tmp_path, monkeypatch):
    """Overrides, audit entries and the router's state are the operator's: no tenant key reads or writes them."""
    async with server(tmp_path, monkeypatch) as (url, app):
        async with httpx.AsyncClient(base_url=url, timeout=WAIT_S) as http:
            assert (await http.get("/v1/audit", headers=auth(ADMIN))).status_code == 200
            for key in (ACME_1, GLOBEX):
                assert (await http.get("/v1/audit", headers=auth(key))).status_code in (401, 403)
                put = await http.put("/v1/router/overrides", headers=auth(key), json={
                    "scope": "tenant", "subject": "globex", "role": "dialogue", "model": "embedded-responder"})
                assert put.status_code in (401, 403)
                assert (await http.get("/v1/router/overrides", headers=auth(key))).status_code in (401, 403)


async def test_a_tenant_key_with_an_admin_capability_reaches_that_admin_route_only(tmp_path, monkeypatch):
    """admin:audit reads the audit log; it does not change the router's configuration (admin:models does)."""
    auditor = "sk-acme-auditor-0001"
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [{"id": "acme", "keys": [
        {"hash": hash_key(auditor), "capabilities": ["admin:audit"]}, hash_key(ACME_1)]}]}))
    monkeypatch.setenv("SOMAGENT_ADMIN_KEY", ADMIN)
    app = create_app(Settings(deployment_mode="test", tenants_file=str(path), warmup=False))
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=WAIT_S) as http:
        entries = (await http.get("/v1/audit", headers=auth(auditor))).json()["entries"]
        assert entries[-1]["actor"] == "key:0001@acme"  # its own read, audited under its name
        put = await http.put("/v1/router/overrides", headers=auth(auditor), json={
            "scope": "tenant", "subject": "acme", "role": "dialogue", "model": "embedded-responder"})
        assert put.status_code == 403 and "admin:models" in put.text
        assert (await http.get("/v1/audit", headers=auth(ACME_1))).status_code == 403
        assert (await http.get("/v1/admin/keys", headers=auth(auditor))).status_code == 403  # operators only
        # and the auditor cannot talk: it was given admin:audit alone
        async with websockets.connect(ws_url(url), additional_headers=auth(auditor), open_timeout=WAIT_S) as ws:
            assert (await recv(ws))["error"]["code"] == "missing_capability"
