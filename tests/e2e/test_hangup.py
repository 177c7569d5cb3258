"""Hang-up clean-up: when a client goes mid-reply, its session, its tasks and its model request all end at once;
nothing keeps generating for a listener who left (Pipecat's users report pipelines that keep running)."""

from __future__ import annotations

import asyncio
import time

from adapters.llm.openai_compat import OpenAICompatConfig
from router.defaults import build_default_router
from tests.e2e.helpers import collect_until
from tests.router.fake_chat_server import FakeChatServer, Script
from voice.app import create_app
from voice.client import RealtimeClient
from voice.config import Settings
from voice.serving import running_server

WAIT_S = 10.0  # a bound on the wait for the clean-up, not the time it is expected to take (printed)


def _session_tasks(session_id: str) -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if session_id in t.get_name() and not t.done()]


async def test_a_client_that_hangs_up_mid_reply_ends_its_session_tasks_and_model_request(
        fake_chat: FakeChatServer, capsys) -> None:
    fake_chat.script("long-llm", Script(tokens=tuple(f" word{i}." for i in range(400)), token_interval_s=0.05))
    router = build_default_router(OpenAICompatConfig(base_url=fake_chat.base_url, model="long-llm", timeout_s=30),
                                  database_url=None, mode="test")
    app = create_app(Settings(warmup=False), router)
    async with running_server(app) as url:
        server = app.state.server
        async with RealtimeClient(url) as client:
            created = await collect_until(client, lambda e: e["type"] == "session.created")
            session_id = created[-1]["session"]["id"]
            await client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                               "content": [{"type": "input_text", "text": "Tell me everything."}]}})
            await client.send({"type": "response.create"})
            await collect_until(client, lambda e: e["type"] == "response.output_audio.delta", timeout=30)
            assert _session_tasks(session_id)  # the reply is being generated and spoken
            assert not fake_chat.ended  # the model is still streaming its 400 words
        left = time.monotonic()
        async with asyncio.timeout(WAIT_S):
            while server.sessions or _session_tasks(session_id) or not fake_chat.ended:
                await asyncio.sleep(0.01)
        took = time.monotonic() - left
        model, how, at = fake_chat.ended[0]
        assert (model, how) == ("long-llm", "client_left")  # the request was cut, not streamed on to its end
        assert len(fake_chat.requests_for("long-llm")) == 1  # and nothing asked the model again
    with capsys.disabled():
        print(f"\nhang-up: session, tasks and model request ended {took * 1000:.0f} ms after the client left "
              f"(the model's stream {max(0.0, at - left) * 1000:.0f} ms)")
