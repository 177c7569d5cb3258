"""router/admin/api.py: the admin HTTP API, in a small FastAPI app holding only the router's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from router import Role, Topic
from router.admin.api import build_admin_router
from router.clock import ManualClock
from router.router import ModelRouter
from tests.router.router_testkit import chat_entry, drain, make_router, with_settings

KEY = "admin-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def service(tmp_path, clock: ManualClock) -> AsyncIterator[ModelRouter]:  # noqa: ANN001
    entries = [
        chat_entry("dear", price=(0.0025, 0.01), quality=0.9),
        chat_entry("cheap", price=(0.00015, 0.0006), quality=0.7),
        chat_entry("offline", price=(0.0, 0.0), last_resort=True),
    ]
    router = make_router(
        entries,
        ("dear", "cheap", "offline"),
        clock=clock,
        settings=with_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}", admin_key=KEY, flush_interval_s=0.05),
    )
    await router.start()
    yield router
    await router.aclose()


@pytest.fixture
async def client(service: ModelRouter) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(build_admin_router(service))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://admin") as c:
        yield c


async def test_every_route_requires_an_admin_key(client: httpx.AsyncClient) -> None:
    routes = [
        ("GET", "/v1/router/profiles"),
        ("PUT", "/v1/router/profiles/dialogue"),
        ("GET", "/v1/router/overrides"),
        ("PUT", "/v1/router/overrides"),
        ("DELETE", "/v1/router/overrides"),
        ("GET", "/v1/router/mode"),
        ("PUT", "/v1/router/mode"),
        ("GET", "/v1/router/flags/auto-selection"),
        ("PUT", "/v1/router/flags/auto-selection"),
        ("POST", "/v1/router/telemetry"),
        ("GET", "/v1/router/rollups"),
        ("POST", "/v1/router/score"),
        ("GET", "/v1/router/explain"),
        ("GET", "/v1/audit"),
    ]
    for method, path in routes:
        missing = await client.request(method, path)
        assert missing.status_code == 401, (method, path)
        assert "admin key required" in missing.json()["detail"]
        wrong = await client.request(method, path, headers={"X-Admin-Key": "nope"})
        assert wrong.status_code == 403 and wrong.json()["detail"].startswith("invalid admin key")
    assert (await client.get("/v1/router/mode", headers={"X-Admin-Key": KEY})).status_code == 200


async def test_no_configured_key_means_forbidden(clock: ManualClock) -> None:
    router = make_router([chat_entry("a")], ("a",), clock=clock)
    app = FastAPI()
    app.include_router(build_admin_router(router))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://admin") as c:
        r = await c.get("/v1/router/mode", headers=AUTH)
    assert r.status_code == 403 and "SOMAGENT_ADMIN_KEY" in r.json()["detail"]


async def test_profiles_get_and_put(client: httpx.AsyncClient, service: ModelRouter) -> None:
    r = await client.get("/v1/router/profiles", headers=AUTH)
    assert r.status_code == 200 and r.json()["mode"] == "test"
    dialogue = r.json()["profiles"]["dialogue"]
    assert dialogue["primary"] == "dear" and dialogue["source"] == "mode_default"
    assert [m["name"] for m in dialogue["models"]] == ["dear", "cheap", "offline"]
    assert dialogue["models"][0]["price"]["input"] == 0.0025 and dialogue["deadlines"]["first_output_s"] > 0
    body = {
        "primary": "cheap",
        "fallbacks": ["dear"],
        "temperature": 0.4,
        "max_tokens": 200,
        "credentials_ref": "OPENAI_API_KEY",
        "first_output_deadline_s": 1.5,
    }
    r = await client.put("/v1/router/profiles/dialogue", headers={**AUTH, "X-Actor": "alice"}, json=body)
    assert r.status_code == 200 and r.json()["primary"] == "cheap" and r.json()["source"] == "stored"
    assert r.json()["deadlines"]["first_output_s"] == 1.5
    got = (await client.get("/v1/router/profiles/dialogue", headers=AUTH)).json()
    assert (got["primary"], got["fallbacks"], got["temperature"]) == ("cheap", ["dear"], 0.4)
    audit = [a for a in (await client.get("/v1/audit", headers=AUTH)).json()["entries"] if a["action"] != "admin.read"]
    assert audit[-1]["actor"] == "bootstrap:alice" and audit[-1]["before"]["primary"] == "dear"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"primary": "nonexistent"}, 422, "not in the catalogue"),
        ({"primary": "dear", "fallbacks": ["dear"]}, 422, "must not repeat"),
        ({"primary": "dear", "credentials_ref": "sk-live-abcdef0123456789"}, 422, "not the secret"),
        ({"primary": "dear", "temperature": 9}, 422, "temperature"),
        ({"primary": "dear", "unknown_field": 1}, 422, "unknown_field"),
    ],
)
async def test_invalid_profiles_are_rejected_and_change_nothing(
    client: httpx.AsyncClient, service: ModelRouter, body: dict, status: int, reason: str
) -> None:
    r = await client.put("/v1/router/profiles/dialogue", headers=AUTH, json=body)
    assert r.status_code == status and reason in str(r.json()["detail"])
    assert service.state.profile(Role.DIALOGUE).primary == "dear"
    entries = (await client.get("/v1/audit", headers=AUTH)).json()["entries"]
    assert [a["action"] for a in entries] == ["admin.read"]  # only this read itself: the refusals changed nothing


async def test_bulk_profiles_are_all_or_nothing(client: httpx.AsyncClient, service: ModelRouter) -> None:
    bad = {"profiles": {"dialogue": {"primary": "cheap"}, "summary": {"primary": "dear"}}}  # no summary profile here
    r = await client.put("/v1/router/profiles", headers=AUTH, json=bad)
    assert r.status_code == 404 and "summary" in r.json()["detail"]
    assert service.state.profile(Role.DIALOGUE).primary == "dear"
    r = await client.put("/v1/router/profiles", headers=AUTH, json={"profiles": {"dialogue": {"primary": "cheap"}}})
    assert r.status_code == 200 and r.json()["profiles"]["dialogue"]["primary"] == "cheap"


async def test_unknown_role_is_a_4xx(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/router/profiles/poetry", headers=AUTH, json={"primary": "dear"})
    assert r.status_code == 422


async def test_overrides_lifecycle_with_events(client: httpx.AsyncClient, service: ModelRouter) -> None:
    sub = service.bus.subscribe({Topic.PROFILE_UPDATED})
    body = {
        "scope": "tenant",
        "subject": "acme",
        "role": "dialogue",
        "model": "cheap",
        "locked": True,
        "reason": "contract",
    }
    r = await client.put("/v1/router/overrides", headers=AUTH, json=body)
    assert r.status_code == 200 and r.json()["locked"] is True
    listed = (await client.get("/v1/router/overrides?scope=tenant", headers=AUTH)).json()["overrides"]
    assert [(o["subject"], o["model"]) for o in listed] == [("acme", "cheap")]
    explain = (await client.get("/v1/router/explain?role=dialogue&tenant=acme", headers=AUTH)).json()
    assert (explain["chosen"], explain["source"], explain["locked"]) == ("cheap", "locked_override", True)
    r = await client.delete("/v1/router/overrides?scope=tenant&subject=acme&role=dialogue", headers=AUTH)
    assert r.status_code == 200 and r.json()["deleted"]["model"] == "cheap"
    r = await client.delete("/v1/router/overrides?scope=tenant&subject=acme&role=dialogue", headers=AUTH)
    assert r.status_code == 404
    events = drain(sub)
    assert [(e.payload["kind"], e.payload["after"] is None) for e in events] == [
        ("override", False),
        ("override", True),
    ]
    audit = (await client.get("/v1/audit", headers=AUTH)).json()["entries"]
    assert [a["action"] for a in audit if a["action"] != "admin.read"] == ["override.put", "override.delete"]
    reads = [a for a in audit if a["action"] == "admin.read"]
    assert {a["target"] for a in reads} >= {"/v1/router/overrides", "/v1/router/explain", "/v1/audit"}
    assert all(len(a["after"]["query_sha256"]) == 64 and "acme" not in str(a["after"]) for a in reads)
    bad = await client.put("/v1/router/overrides", headers=AUTH, json={**body, "scope": "planet"})
    assert bad.status_code == 422


async def test_a_tenant_persona_override_is_that_tenants_alone(client: httpx.AsyncClient) -> None:
    body = {"scope": "tenant_persona", "subject": "acme/support", "role": "dialogue", "model": "cheap",
            "locked": True}
    assert (await client.put("/v1/router/overrides", headers=AUTH, json=body)).status_code == 200
    mine = (await client.get("/v1/router/explain?role=dialogue&tenant=acme&persona=support", headers=AUTH)).json()
    theirs = (await client.get("/v1/router/explain?role=dialogue&tenant=globex&persona=support",
                               headers=AUTH)).json()
    assert (mine["chosen"], mine["source"]) == ("cheap", "locked_override")
    assert theirs["source"] != "locked_override"
    for subject in ("acme", "acme/", "/support"):
        bad = await client.put("/v1/router/overrides", headers=AUTH, json={**body, "subject": subject})
        assert bad.status_code == 422 and "tenant_persona" in bad.text


async def test_mode_and_flag(client: httpx.AsyncClient, service: ModelRouter) -> None:
    assert (await client.put("/v1/router/mode", headers=AUTH, json={"mode": "production"})).json() == {
        "mode": "production"
    }
    assert (await client.get("/v1/router/mode", headers=AUTH)).json()["mode"] == "production"
    assert (await client.put("/v1/router/mode", headers=AUTH, json={"mode": "staging"})).status_code == 422
    assert (await client.put("/v1/router/flags/auto-selection", headers=AUTH, json={"enabled": True})).json() == {
        "enabled": True
    }
    assert service.state.auto_selection is True
    assert (await client.get("/v1/router/flags/auto-selection", headers=AUTH)).json() == {"enabled": True}


async def test_telemetry_ingest_rollups_score_and_explain(
    client: httpx.AsyncClient, service: ModelRouter, clock: ManualClock
) -> None:
    records = [
        {
            "role": "dialogue",
            "model": m,
            "latency_ms": 800,
            "ttft_ms": t,
            "units_in": 1000,
            "units_out": 100,
            "ts": clock() - 30,
        }
        for m, t in (("dear", 300), ("cheap", 350))
        for _ in range(12)
    ]
    records.append({"role": "dialogue", "model": "cheap", "latency_ms": 900, "outcome": "timeout", "ts": clock() - 30})
    r = await client.post("/v1/router/telemetry", headers=AUTH, json={"records": records})
    assert r.status_code == 202 and r.json() == {"accepted": 25}
    roll = (await client.get("/v1/router/rollups?role=dialogue&window=5m", headers=AUTH)).json()
    by_model = {x["model"]: x for x in roll["rollups"]}
    assert by_model["dear"]["calls"] == 12 and by_model["cheap"]["calls"] == 13
    assert by_model["cheap"]["success_rate"] == pytest.approx(12 / 13)
    # cost came from the catalogue price, since the records gave none
    assert by_model["dear"]["cost_per_1k_tokens"] == pytest.approx((1000 * 0.0025 + 100 * 0.01) / 1100)
    scored = (await client.post("/v1/router/score", headers=AUTH, json={"role": "dialogue"})).json()
    assert {c["model"] for c in scored["scores"][0]["candidates"]} == {"dear", "cheap"}
    await client.put("/v1/router/flags/auto-selection", headers=AUTH, json={"enabled": True})
    explain = (await client.get("/v1/router/explain?role=dialogue&conversation=c9", headers=AUTH)).json()
    assert explain["chosen"] == "cheap" and explain["source"] == "auto" and explain["telemetry_age_s"] == 30
    assert not service.sticky.known("c9")  # a dry run
    assert (await client.get("/v1/router/rollups?window=2h", headers=AUTH)).status_code == 422
    stored = (await client.get("/v1/router/rollups?role=dialogue&window=1h&source=store", headers=AUTH)).json()
    assert {x["model"]: x["calls"] for x in stored["rollups"]} == {"dear": 12, "cheap": 13}


async def test_ingest_is_all_or_nothing(client: httpx.AsyncClient, service: ModelRouter) -> None:
    good = {"role": "dialogue", "model": "dear", "latency_ms": 100}
    for bad in (
        {**good, "latency_ms": -1},
        {**good, "outcome": "exploded"},
        {**good, "ts": 4_000_000_000},
        {**good, "role": "juggling"},
        {"model": "dear"},
    ):
        r = await client.post("/v1/router/telemetry", headers=AUTH, json={"records": [good, good, bad]})
        assert r.status_code == 422, bad
    assert service.telemetry.rollup(Role.DIALOGUE, "dear", "24h", service.clock()).calls == 0
    await service.flush()
    assert service.store.count_call_records() == 0
    assert (await client.post("/v1/router/telemetry", headers=AUTH, json={"records": []})).status_code == 422


async def test_personas_catalog_health_and_audit_since(client: httpx.AsyncClient, clock: ManualClock) -> None:
    r = await client.put(
        "/v1/router/personas/nurse",
        headers=AUTH,
        json={"latency_p95_ms": 800, "min_success_rate": 0.98, "safety": ["content_filter"]},
    )
    assert r.status_code == 200 and r.json()["safety"] == ["content_filter"]
    assert (
        await client.put("/v1/router/personas/nurse", headers=AUTH, json={"min_success_rate": 2})
    ).status_code == 422
    assert (await client.get("/v1/router/personas/nurse", headers=AUTH)).json()["latency_p95_ms"] == 800
    assert (await client.get("/v1/router/personas/ghost", headers=AUTH)).status_code == 404
    cat = (await client.get("/v1/router/catalog", headers=AUTH)).json()["models"]
    assert {m["name"] for m in cat} == {"dear", "cheap", "offline"}
    assert (await client.get("/v1/router/health", headers=AUTH)).json() == {"breakers": []}
    clock.advance(100)
    await client.delete("/v1/router/personas/nurse", headers=AUTH)
    iso = "2025-06-15T15:06:40+00:00"  # the fixture clock's start, as ISO-8601
    since = (await client.get("/v1/audit", headers=AUTH, params={"since": clock() - 60})).json()["entries"]
    assert [e["action"] for e in since] == ["persona.delete", "admin.read"]  # the change, and this read
    assert (await client.get("/v1/audit", headers=AUTH, params={"since": "yesterday"})).status_code == 422
    assert len((await client.get("/v1/audit", headers=AUTH, params={"since": iso})).json()["entries"]) >= 1
