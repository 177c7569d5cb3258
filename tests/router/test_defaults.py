"""router/defaults.py: the default router the voice server builds, with no configuration, and where it persists."""

from __future__ import annotations

from adapters.llm.base import ChatMessage, ChatRequest
from router import CallContext, Role
from router.defaults import build_default_router

CTX = CallContext(tenant="t", persona="p", conversation_id="c", session_id="s")


async def test_default_router_with_no_configuration(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    for var in (
        "SOMAGENT_LLM_BASE_URL",
        "SOMAGENT_DATABASE_URL",
        "SOMAGENT_DEPLOYMENT_MODE",
        "AUTO_MODEL_SELECTION_ENABLED",
        "SOMAGENT_ROUTER_CATALOG",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    router = build_default_router()
    assert router.mode.value == "developer-light" and router.settings.database_url == "sqlite:///./data/somagent.db"
    assert router.candidates(Role.SPEECH_RECOGNITION, CallContext())[0] == "pocketsphinx-en-us"
    request = ChatRequest((ChatMessage("user", "hello"),), max_tokens=3)
    text = "".join([c.text async for c in router.stream_chat(Role.DIALOGUE, request, CTX)])
    assert text.startswith("Hello!")
    assert not (tmp_path / "data").exists()  # nothing opened before start()
    await router.aclose()


async def test_default_router_persists_under_data_after_start(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.delenv("SOMAGENT_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    router = build_default_router(mode="test", admin_key="k")
    await router.start()
    assert (tmp_path / "data" / "somagent.db").exists()
    assert router.store is not None and router.store.schema_revision() == "0001_router_initial"
    await router.aclose()

