"""A spoken turn answered by an OpenAI-compatible chat server through the router, end to end over loopback."""

from __future__ import annotations

import pytest

from adapters.llm.openai_compat import OpenAICompatConfig
from router.defaults import build_default_router
from tests.e2e.helpers import server_thread
from tests.helpers import SPEECH
from tests.router.fake_chat_server import FakeChatServer, Script
from voice.config import Settings
from voice.replay import replay_file


def _router(fake: FakeChatServer, model: str, mode: str | None = None):
    llm = OpenAICompatConfig(base_url=fake.base_url, model=model, timeout_s=10)
    return build_default_router(llm, database_url=None, mode=mode)


async def test_spoken_turn_is_answered_by_the_chat_server(fake_chat: FakeChatServer) -> None:
    fake_chat.script("voice-llm", Script(tokens=("Ten", " meters", " it", " is.", " Going", " now.")))
    with server_thread(Settings(), _router(fake_chat, "voice-llm")) as url:
        result = await replay_file(url, SPEECH / "goforward.wav", speed=0)
    (turn,) = result.turns
    assert turn.assistant_transcript == "Ten meters it is. Going now."
    assert turn.assistant_audio_ms > 1000 and turn.response_status == "completed"
    (request,) = fake_chat.requests_for("voice-llm")
    messages = request.body["messages"]
    assert request.body["stream"] is True
    assert messages[0]["role"] == "system"
    assert messages[-1] == {"role": "user", "content": turn.user_transcript}


async def test_provider_error_falls_back_to_the_embedded_responder(fake_chat: FakeChatServer) -> None:
    fake_chat.script("down-llm", Script(status=503))
    with server_thread(Settings(), _router(fake_chat, "down-llm")) as url:
        result = await replay_file(url, SPEECH / "goforward.wav", speed=0)
    (turn,) = result.turns
    assert turn.assistant_transcript.startswith("I heard:")
    assert turn.response_status == "completed"
    assert fake_chat.requests_for("down-llm")


async def test_persona_override_set_through_the_admin_api_reaches_the_session(fake_chat: FakeChatServer) -> None:
    import httpx

    fake_chat.script("voice-llm", Script(tokens=("From", " the", " LLM.")))
    router = build_default_router(OpenAICompatConfig(base_url=fake_chat.base_url, model="voice-llm", timeout_s=10),
                                  database_url=None, admin_key="adm-test")
    with server_thread(Settings(), router) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer adm-test"}) as admin:
            put = await admin.put("/v1/router/overrides", json={
                "scope": "persona", "subject": "offline-demo", "role": "dialogue",
                "model": "embedded-responder", "locked": True, "reason": "demo persona stays offline"})
            assert put.status_code == 200, put.text
        plain = await replay_file(url, SPEECH / "goforward.wav", speed=0)
        persona = await replay_file(url, SPEECH / "goforward.wav", speed=0,
                                    session={"somagent": {"events": True, "persona": "offline-demo"}})
    assert plain.turns[0].assistant_transcript == "From the LLM."
    assert persona.turns[0].assistant_transcript.startswith("I heard:")
    assert len(fake_chat.requests_for("voice-llm")) == 1


SPOKEN_FAULTS = {
    "http_500": Script(status=500),
    "garbage_sse": Script(garbage=b"data: {oops\n\n"),
    "html_body": Script(garbage=b"<html>502 Bad Gateway</html>"),
    "hangs": Script(hang_s=30.0),
    "silent_stream": Script(first_token_delay_s=30.0),
    "stalls_mid_reply": Script(tokens=("Going", " forward", " now."), stall_after=2, stall_s=30.0),
    "breaks_mid_reply": Script(tokens=("Going", " forward", " now."), break_after=2),
}


@pytest.mark.parametrize("fault", list(SPOKEN_FAULTS))
async def test_a_spoken_turn_is_answered_in_speech_whatever_the_chat_server_does(
        fake_chat: FakeChatServer, fault: str) -> None:
    """Every way an OpenAI-compatible server can fail still gets the user a spoken, completed answer: from the
    fallback (the embedded responder), after what the server had already said where it broke off mid-reply."""
    fake_chat.script("flaky-llm", SPOKEN_FAULTS[fault])
    # test mode's deadlines (a first token within 2 s, no gap over 4 s), not developer-light's five times longer
    with server_thread(Settings(), _router(fake_chat, "flaky-llm", mode="test")) as url:
        result = await replay_file(url, SPEECH / "goforward.wav", speed=0)
    (turn,) = result.turns
    assert turn.response_status == "completed"
    assert turn.assistant_audio_ms > 500  # spoken, not only text
    heard = turn.assistant_transcript
    if fault.endswith("mid_reply"):
        assert heard.startswith("Going forward ") and "I heard:" in heard  # its words stand; the fallback goes on
    else:
        assert heard.startswith("I heard:")
    assert fake_chat.requests_for("flaky-llm")
