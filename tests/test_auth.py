"""Keys: optional in developer-light, required in test and production; client secrets for browsers."""

import httpx
import pytest
import websockets

from tests.helpers import server_thread
from voice.auth import Authenticator, AuthError
from voice.client import RealtimeClient
from voice.config import Settings


@pytest.fixture(scope="module")
def test_mode_url():
    with server_thread(Settings(deployment_mode="test", api_keys=frozenset({"sk-good"}), warmup=False)) as url:
        yield url


async def _refusal(url: str, key: str | None) -> tuple[dict, int, str]:
    async with RealtimeClient(url, api_key=key) as client:
        event = await client.recv(timeout=10)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await client.recv(timeout=10)
    return event, info.value.rcvd.code, info.value.rcvd.reason


@pytest.mark.parametrize("key,code", [(None, "missing_api_key"), ("sk-bad", "invalid_api_key")])
async def test_test_mode_refuses_missing_or_unknown_key(test_mode_url, key, code):
    event, close_code, reason = await _refusal(test_mode_url, key)
    assert event["type"] == "error" and event["error"]["code"] == code
    assert close_code == 1008
    assert reason.startswith(code)


async def test_test_mode_accepts_known_key(test_mode_url):
    async with RealtimeClient(test_mode_url, api_key="sk-good") as client:
        assert (await client.recv(timeout=10))["type"] == "session.created"


async def test_client_secret_flow(test_mode_url):
    async with httpx.AsyncClient(base_url=test_mode_url) as http:
        refused = await http.post("/v1/realtime/client_secrets", json={})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "missing_api_key"
        bad = await http.post("/v1/realtime/client_secrets", headers={"Authorization": "Bearer sk-good"},
                              json={"session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/ogg"}}}}})
        assert bad.status_code == 400
        ok = await http.post("/v1/realtime/client_secrets", headers={"Authorization": "Bearer sk-good"},
                             json={"expires_after": {"anchor": "created_at", "seconds": 60},
                                   "session": {"type": "realtime", "instructions": "Speak like a pirate."}})
        assert ok.status_code == 200
        body = ok.json()
        assert body["value"].startswith("ek_") and body["expires_at"] > 0
        assert body["session"]["instructions"] == "Speak like a pirate."
        nested = await http.post("/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {body['value']}"})
        assert nested.status_code == 401
    async with RealtimeClient(test_mode_url, api_key=body["value"]) as client:
        created = await client.recv(timeout=10)
        assert created["type"] == "session.created"
        assert created["session"]["instructions"] == "Speak like a pirate."


def test_expired_secret_is_refused():
    now = [1000.0]
    auth = Authenticator(Settings(deployment_mode="production", api_keys=frozenset({"k"})), clock=lambda: now[0])
    owner = auth.check("k")
    value, expires_at = auth.issue_secret(owner, 30, None)
    assert auth.check(value).key_id.startswith("secret:")
    now[0] += 31
    with pytest.raises(AuthError) as info:
        auth.check(value)
    assert info.value.code == "client_secret_expired"


def test_developer_light_allows_missing_key_but_not_a_wrong_configured_one():
    auth = Authenticator(Settings(api_keys=frozenset({"k"})))
    assert auth.check(None).key_id == "anonymous"
    with pytest.raises(AuthError):
        auth.check("typo")
    assert Authenticator(Settings()).check("anything").key_id == "anonymous"


def test_settings_reject_unknown_mode():
    with pytest.raises(ValueError, match="SOMAGENT_DEPLOYMENT_MODE"):
        Settings.from_env({"SOMAGENT_DEPLOYMENT_MODE": "staging"})
    s = Settings.from_env({"SOMAGENT_DEPLOYMENT_MODE": "production", "SOMAGENT_API_KEYS": "a, b,,"})
    assert s.api_keys == frozenset({"a", "b"}) and s.requires_key


async def test_health_and_docs(server_url):
    async with httpx.AsyncClient(base_url=server_url) as http:
        health = (await http.get("/healthz")).json()
        assert health["status"] == "ok" and health["mode"] == "developer-light"
        spec = (await http.get("/openapi.json")).json()
        assert "/v1/realtime/client_secrets" in spec["paths"]
        assert (await http.get("/docs")).status_code == 200
