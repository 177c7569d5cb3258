"""router/modes.py: deployment modes: defaults per mode, switching at runtime."""

from __future__ import annotations

from adapters.llm.openai_compat import OpenAICompatConfig
from router import CallContext, Role, Topic
from router.clock import ManualClock
from router.defaults import build_default_router
from router.modes import DEFAULT_SCORE_WEIGHTS, DeploymentMode
from tests.router.router_testkit import drain

LLM = OpenAICompatConfig(base_url="http://127.0.0.1:9/v1", model="gpt-4o-mini")


def test_every_mode_has_a_profile_for_all_seven_roles() -> None:
    router = build_default_router(LLM, database_url=None)
    for mode in DeploymentMode:
        assert set(router.state.policies[mode].profiles.roles()) == set(Role)


def test_mode_defaults_differ_where_they_should() -> None:
    router = build_default_router(LLM, database_url=None)
    dev = router.state.profile(Role.DIALOGUE, DeploymentMode.DEVELOPER_LIGHT)
    prod = router.state.profile(Role.DIALOGUE, DeploymentMode.PRODUCTION)
    assert dev.candidates == ("gpt-4o-mini", "embedded-responder")
    assert prod.candidates == ("gpt-4o-mini",)
    assert DEFAULT_SCORE_WEIGHTS[DeploymentMode.PRODUCTION] != DEFAULT_SCORE_WEIGHTS[DeploymentMode.DEVELOPER_LIGHT]
    dev_deadline = router.state.policies[DeploymentMode.DEVELOPER_LIGHT].timeouts_for(Role.DIALOGUE).first_output_s
    prod_deadline = router.state.policies[DeploymentMode.PRODUCTION].timeouts_for(Role.DIALOGUE).first_output_s
    assert prod_deadline < dev_deadline
    # a configured model's price comes from the published list, with its source
    assert router.catalog.entry("gpt-4o-mini").price.source.startswith("openai.com")


def test_unknown_model_price_stays_unknown() -> None:
    router = build_default_router(OpenAICompatConfig(base_url="http://x/v1", model="house-model-7b"), database_url=None)
    assert router.catalog.entry("house-model-7b").price is None
    assert router.catalog.entry("house-model-7b").describe()["cost_known"] is False


async def test_switching_mode_publishes_and_live_sessions_pick_up_new_profiles(clock: ManualClock) -> None:
    router = build_default_router(LLM, database_url=None, clock=clock)
    sub = router.bus.subscribe({Topic.MODE_CHANGED})
    ctx = CallContext(conversation_id="live")
    assert router.select(Role.DIALOGUE, ctx).order == ("gpt-4o-mini", "embedded-responder")
    await router.admin.set_mode("production", "ops")
    assert [e.payload["after"] for e in drain(sub)] == ["production"]
    sel = router.select(Role.DIALOGUE, ctx)
    assert sel.order == ("gpt-4o-mini",) and sel.mode == "production"
    assert router.state.policy.breaker == router.breakers.get("gpt-4o-mini").config


async def test_mode_changed_event_payload(clock: ManualClock) -> None:
    router = build_default_router(LLM, database_url=None, clock=clock)
    sub = router.bus.subscribe({Topic.MODE_CHANGED})
    await router.admin.set_mode("test", "ops")
    payload = drain(sub)[0].payload
    assert (payload["before"], payload["after"], payload["actor"]) == ("developer-light", "test", "ops")
    entries = await router.admin.audit_since(0)
    assert [(e.action, e.before, e.after) for e in entries] == [
        ("mode.set", {"mode": "developer-light"}, {"mode": "test"})
    ]

