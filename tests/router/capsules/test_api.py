"""router/capsules/api.py: capsules listed and added (validated, immutable per version), runs started in the
background and read back, the quality aggregates and work items, all behind the admin key."""

from __future__ import annotations

import asyncio

from tests.router.capsules.conftest import ADMIN_KEY, TEXT_CAPSULE

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}



async def test_capsules_are_added_once_per_version(client, benchmarks, router):  # noqa: ANN001
    assert (await client.get("/v1/router/capsules")).status_code == 401
    listed = (await client.get("/v1/router/capsules", headers=AUTH)).json()["capsules"]
    assert [(c["name"], c["version"], c["items"]) for c in listed] == [("quiz", "1", 5)]
    new = {**TEXT_CAPSULE, "name": "quiz-two", "items": TEXT_CAPSULE["items"][:2]}
    added = await client.post("/v1/router/capsules", json=new, headers=AUTH)
    assert added.status_code == 201 and len(added.json()["digest"]) == 64
    assert (await client.post("/v1/router/capsules", json=new, headers=AUTH)).status_code == 201  # the same: fine
    changed = await client.post("/v1/router/capsules", json={**new, "items": new["items"][:1]}, headers=AUTH)
    assert changed.status_code == 409 and "new version" in changed.json()["detail"]
    assert "capsule.add" in [e.action for e in await router.admin.audit_since(0.0)]
    # stored: a fresh library (a restart) knows it
    from router.capsules.library import CapsuleLibrary
    again = CapsuleLibrary(benchmarks.results, benchmarks.settings.directory)
    assert "quiz-two@1" in [c.key for c in await again.all()]


async def test_a_run_started_through_the_api_is_polled_and_read_back(client):  # noqa: ANN001
    started = await client.post("/v1/router/capsules/runs", json={"role": "dialogue", "models": ["oracle"]},
                                headers=AUTH)
    assert started.status_code == 202 and started.json()["status"] == "running"
    job = started.json()["id"]
    for _ in range(200):  # bounded
        polled = (await client.get(f"/v1/router/capsules/jobs/{job}", headers=AUTH)).json()
        if polled["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert polled["status"] == "done" and len(polled["runs"]) == 1
    run = (await client.get(f"/v1/router/capsules/runs/{polled['runs'][0]}", headers=AUTH)).json()
    assert run["models"] == ["oracle"] and run["purpose"] == "api" and len(run["items"]) == 5
    assert run["summary"]["oracle"]["quality"] > 0.9
    assert {i["item_id"] for i in run["items"]} == {"capital", "planet", "bomb", "egg", "french"}
    runs = (await client.get("/v1/router/capsules/runs", params={"role": "dialogue"}, headers=AUTH)).json()["runs"]
    assert [r["id"] for r in runs] == polled["runs"]
    quality = (await client.get("/v1/router/quality", headers=AUTH)).json()["quality"]
    assert quality["dialogue"]["oracle"]["capsules"]["quiz"] > 0.9
    bad = await client.post("/v1/router/capsules/runs", json={"role": "dialogue", "models": ["nope"]}, headers=AUTH)
    assert bad.status_code == 422
    assert (await client.get("/v1/router/capsules/jobs/nope", headers=AUTH)).status_code == 404
    other = await client.post("/v1/router/capsules/runs", json={"role": "dialogue", "capsule": "nope"}, headers=AUTH)
    assert other.status_code == 404 and "no capsule 'nope'" in other.json()["detail"]


async def test_work_items_are_listed_and_closed(client, benchmarks, capsule, fake_chat, clock):  # noqa: ANN001
    from tests.router.capsules.conftest import guesses
    await benchmarks.runner.run(capsule)
    clock.advance(60)
    fake_chat.answer("oracle", guesses)
    await benchmarks.runner.run(capsule)
    [item] = (await client.get("/v1/router/work-items", params={"status": "open"}, headers=AUTH)).json()["work_items"]
    assert item["model"] == "oracle" and item["metric"] == "quality"
    closed = await client.post(f"/v1/router/work-items/{item['id']}/close", headers=AUTH)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert (await client.post(f"/v1/router/work-items/{item['id']}/close", headers=AUTH)).status_code == 404
