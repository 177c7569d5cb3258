"""voice/workers.py: `somagent-voice serve --workers 2` as a user runs it: one port, two worker processes.

The kernel spreads connections over the workers, so each test opens fresh connections until it has seen
both workers answer (`x-somagent-worker`, or the sessions each worker reports); every loop is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
import websockets.sync.client
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.webrtc.offers import make_offer
from voice.client import RealtimeClient, ws_url
from voice.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-workers-test"
ADMIN = {"Authorization": "Bearer adm-workers-test"}
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TRIES = 64  # fresh connections to reach both workers: all on one has odds 2**-63


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("workers")
    port = free_port()
    env = {**os.environ, "SOMAGENT_STACK": "light", "SOMAGENT_DATABASE_URL": f"sqlite:///{tmp}/router.db",
           "SOMAGENT_API_KEYS": API_KEY, "SOMAGENT_ADMIN_KEY": "adm-workers-test", "SOMAGENT_WARMUP": "0",
           "SOMAGENT_MAX_SESSIONS": "40"}
    proc = subprocess.Popen([sys.executable, "-m", "voice", "serve", "--workers", "2", "--port", str(port),
                             "--log-level", "warning"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, "the server exited at start"
            assert time.monotonic() < deadline, "the workers did not start"
            try:
                body = httpx.get(url + "/healthz", timeout=2).json()
                if [w.get("status") for w in body.get("workers", [])] == ["ok", "ok"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(60) == 0  # SIGTERM stops the workers and the supervisor cleanly
        finally:
            if proc.poll() is None:
                proc.kill()


def _fresh(url: str, method: str, path: str, **kw) -> httpx.Response:
    """One request on a new connection, so the kernel picks the worker anew."""
    with httpx.Client(base_url=url, timeout=10) as client:
        return client.request(method, path, **kw)


def _workers(url: str) -> list[dict]:
    return _fresh(url, "GET", "/healthz").json()["workers"]


def test_health_lists_both_workers_and_each_answers(server: str) -> None:
    seen = {int(_fresh(server, "GET", "/healthz").headers["x-somagent-worker"]) for _ in range(TRIES)}
    assert seen == {0, 1}
    workers = _workers(server)
    assert [w["worker"] for w in workers] == [0, 1]
    assert len({w["pid"] for w in workers}) == 2  # two processes
    assert all(w["ready"] for w in workers)


async def test_sessions_spread_over_the_workers_and_metrics_merge_them(server: str) -> None:
    before = _opened(server)
    clients = [RealtimeClient(server, api_key=API_KEY) for _ in range(16)]
    try:
        for c in clients:
            await c.__aenter__()
            assert (await c.recv(timeout=30))["type"] == "session.created"
        per_worker = [w["sessions"] for w in _workers(server)]
        assert sum(per_worker) == 16 and min(per_worker) > 0, per_worker
        opened = _opened(server)
        assert {k: opened.get(k, 0) - before.get(k, 0) for k in ("0", "1")} == {
            "0": per_worker[0], "1": per_worker[1]}
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def _opened(url: str) -> dict[str, float]:
    """somagent_sessions_opened per worker label, from one scrape of any worker."""
    text = _fresh(url, "GET", "/metrics").text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "somagent_sessions_opened":
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[s.labels["worker"]] = out.get(s.labels["worker"], 0.0) + s.value
    return out


async def test_a_client_secret_from_one_worker_opens_sessions_on_every_worker(server: str) -> None:
    r = _fresh(server, "POST", "/v1/realtime/client_secrets", headers=AUTH,
               json={"session": {"instructions": "Speak like a pirate."}})
    assert r.status_code == 200, r.text
    secret = r.json()["value"]
    clients = [RealtimeClient(server, api_key=secret) for _ in range(12)]
    try:
        for c in clients:
            await c.__aenter__()
            created = await c.recv(timeout=30)
            assert created["type"] == "session.created"
            assert created["session"]["instructions"] == "Speak like a pirate."  # the secret's session came along
        assert all(w["sessions"] > 0 for w in _workers(server))
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_a_call_is_reached_through_any_worker_and_hung_up_once(server: str) -> None:
    pc, sdp = await make_offer()
    try:
        r = _fresh(server, "POST", "/v1/realtime/calls", headers={**AUTH, "Content-Type": "application/sdp"},
                   content=sdp)
        assert r.status_code == 201, r.text
        location = r.headers["Location"]
        call_id = location.rsplit("/", 1)[1]
        assert call_id.startswith(f"rtc_w{r.headers['x-somagent-worker']}_")
        answered_by = set()
        for _ in range(TRIES):
            got = _fresh(server, "GET", location, headers=AUTH)
            assert got.status_code == 200, got.text
            assert got.json()["id"] == call_id
            answered_by.add(got.headers["x-somagent-worker"])
            if len(answered_by) == 2:
                break
        assert answered_by == {"0", "1"}  # the other worker forwarded it
        assert _fresh(server, "GET", location, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert _fresh(server, "DELETE", location, headers=AUTH).status_code == 200
        for _ in range(8):
            assert _fresh(server, "GET", location, headers=AUTH).status_code == 404
    finally:
        await pc.close()


async def _instructions_set(sb, instructions: str) -> dict:
    await sb.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": instructions}}))
    async with asyncio.timeout(30):
        while True:
            event = json.loads(await sb.recv())
            if event["type"] == "session.updated" and event["session"]["instructions"] == instructions:
                return event


async def test_a_calls_sideband_is_relayed_from_any_worker_and_closed_by_the_hang_up(server: str) -> None:
    pc, sdp = await make_offer()
    try:
        r = _fresh(server, "POST", "/v1/realtime/calls", headers={**AUTH, "Content-Type": "application/sdp"},
                   content=sdp)
        assert r.status_code == 201, r.text
        location, owner = r.headers["Location"], r.headers["x-somagent-worker"]
        call_id = location.rsplit("/", 1)[1]
        session_id = _fresh(server, "GET", location, headers=AUTH).json()["session_id"]
        url = f"{ws_url(server)}?call_id={call_id}"
        seen: set[str] = set()
        for i in range(TRIES):  # each a new connection: the kernel picks the worker anew
            async with websockets.connect(url, additional_headers=AUTH, open_timeout=30) as sb:
                seen.add(sb.response.headers["x-somagent-worker"])
                updated = await _instructions_set(sb, f"Attached {i}.")
                assert updated["session"]["id"] == session_id  # the call's own session, wherever we landed
            if seen == {"0", "1"}:
                break
        assert seen == {"0", "1"}
        other = str(1 - int(owner))
        async with websockets.connect(url.replace(call_id, f"rtc_w{other}_nosuchcall"), additional_headers=AUTH,
                                      open_timeout=30) as sb:
            refusal = json.loads(await asyncio.wait_for(sb.recv(), 30))
            assert refusal["error"]["code"] == "call_not_found"
        for _ in range(TRIES):  # a sideband that the other worker relays ends with the call
            sb = await websockets.connect(url, additional_headers=AUTH, open_timeout=30)
            if sb.response.headers["x-somagent-worker"] != owner:
                break
            await sb.close()
        try:
            assert sb.response.headers["x-somagent-worker"] == other
            await _instructions_set(sb, "Relayed.")
            assert _fresh(server, "DELETE", location, headers=AUTH).status_code == 200
            with pytest.raises(websockets.ConnectionClosedOK) as ended:
                async with asyncio.timeout(30):
                    while True:
                        await sb.recv()
            assert ended.value.rcvd.code == 1000 and "hangup" in ended.value.rcvd.reason
        finally:
            await sb.close()
    finally:
        await pc.close()


def test_internal_routes_are_not_for_clients(server: str) -> None:
    for path in ("/_internal/health", "/_internal/metrics"):
        assert _fresh(server, "GET", path, headers=AUTH).status_code == 404
    r = _fresh(server, "POST", "/_internal/secrets", headers={"x-somagent-internal": "guess"},
               json={"value": "ek_mine", "expires_at": time.time() + 600, "tenant": "x"})
    assert r.status_code == 404
    with pytest.raises(websockets.InvalidStatus) as refused:  # the sideband relay's route: refused at the handshake
        websockets.sync.client.connect("ws" + server[4:] + "/_internal/realtime?call_id=rtc_w0_x",
                                       additional_headers={"x-somagent-internal": "guess", **AUTH}, open_timeout=30)
    assert refused.value.response.status_code == 403


def test_an_admin_change_reaches_every_worker(server: str) -> None:
    assert _fresh(server, "PUT", "/v1/router/flags/auto-selection", headers=ADMIN,
                  json={"enabled": True}).status_code == 200
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while seen != {"0", "1"}:
            assert time.monotonic() < deadline, f"only workers {seen} adopted the change"
            r = _fresh(server, "GET", "/v1/router/flags/auto-selection", headers=ADMIN)
            if r.json() == {"enabled": True}:
                seen.add(r.headers["x-somagent-worker"])
            time.sleep(0.05)
    finally:
        _fresh(server, "PUT", "/v1/router/flags/auto-selection", headers=ADMIN, json={"enabled": False})


def test_a_worker_that_dies_is_restarted_and_the_other_serves_meanwhile(server: str) -> None:
    victim = _workers(server)[1]
    os.kill(victim["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "worker 1 was not restarted"
        try:
            workers = _workers(server)  # answered by worker 0 while 1 is down
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if workers[1].get("status") == "ok" and workers[1]["pid"] != victim["pid"]:
            break
        time.sleep(0.2)
    assert workers[0]["pid"] != victim["pid"] and workers[0]["status"] == "ok"
