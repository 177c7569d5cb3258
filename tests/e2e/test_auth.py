"""Keys over a real server: required in test and production (refused with a clear close), client secrets for
browsers. (The authenticator on its own: tests/voice/test_auth.py.)"""

import httpx
import pytest
import websockets

from tests.e2e.helpers import server_thread
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
        ogg = {"session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/ogg"}}}}}
        bad = await http.post("/v1/realtime/client_secrets", headers={"Authorization": "Bearer sk-good"}, json=ogg)
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
