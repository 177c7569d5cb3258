"""The default developer-light stack end to end, with the real local models: a question spoken (by Piper) is
recognised by Whisper tiny.en, answered by SmolLM2 in its own process and spoken back by Piper; when the SmolLM2
process is killed mid-answer the turn is still answered (by the embedded responder), the process comes back, and the
next turn is SmolLM2's again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import numpy as np
import pytest

from adapters.llm.local_server import SMOLLM2
from adapters.tts.piper import PiperSynthesizer
from dsp import resample
from router.defaults import ESPEAK, PIPER, POCKETSPHINX, WHISPER, build_default_router
from router.overrides import Override, Scope
from router.roles import Role
from tests.e2e.churn import children
from tests.e2e.helpers import collect_until, server_thread
from tests.helpers import speech
from tests.local_models import normalise
from voice.client import RealtimeClient, decode_audio_delta
from voice.config import ModelSettings, Settings
from voice.tenants import ANONYMOUS


@pytest.fixture(scope="module")
def local_server():
    """One server on the models stack (what `make run` serves), its router at hand."""
    models = ModelSettings.from_env({**os.environ, "SOMAGENT_STACK": "models",
                                    "SOMAGENT_DEPLOYMENT_MODE": "developer-light"})
    router = build_default_router(models.llm, settings=models.router, whisper=models.whisper, local=models.local)
    assert router.state.profile(Role.DIALOGUE).candidates == (SMOLLM2, "embedded-responder")
    with server_thread(Settings(models=models), router) as url:
        yield url, router


async def _turn(client: RealtimeClient, text: str) -> tuple[str, list[dict]]:
    await client.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    await client.send({"type": "response.create"})
    events = await collect_until(client, lambda e: e["type"] == "response.done", timeout=120)
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
    return transcript, events


async def test_a_spoken_question_is_answered_in_speech(local_server, capsys):
    url, router = local_server
    tts = PiperSynthesizer()
    question = np.concatenate([b async for b in tts.synthesize("What is the capital of France?")])
    await tts.aclose()
    async with RealtimeClient(url) as client:
        await collect_until(client, lambda e: e["type"] == "session.created")
        await client.update_session(somagent={"events": True})
        silence = np.zeros(tts.sample_rate, np.int16)
        await client.stream_audio(np.concatenate([question, silence]), tts.sample_rate, speed=0)
        events = await collect_until(client, lambda e: e["type"] == "somagent.turn.metrics", timeout=120)
    heard = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert normalise(heard["transcript"]) == "what is the capital of france"
    reply = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert "paris" in reply.lower() and not reply.startswith("I heard")
    audio = np.concatenate([decode_audio_delta(e) for e in events if e["type"] == "response.output_audio.delta"])
    assert len(audio) / 24000 > 1.0 and np.abs(audio.astype(np.int32)).max() > 3000
    done = next(e for e in events if e["type"] == "response.done")["response"]
    assert done["status"] == "completed" and done["usage"]["output_tokens"] > 0
    metrics = events[-1]
    assert metrics["asr_model"] == WHISPER
    assert router.sticky.get(done["conversation_id"], Role.SPEECH_SYNTHESIS).model == PIPER
    with capsys.disabled():
        keys = ("end_of_turn_to_asr_final_ms", "asr_final_to_first_token_ms", "first_token_to_first_audio_ms",
                "end_of_turn_to_first_audio_ms", "voice_to_voice_ms")
        print("\nlocal models, one spoken turn: " + ", ".join(f"{k} {metrics.get(k)}" for k in keys))


async def test_a_killed_language_model_mid_answer_still_answers_the_turn(local_server):
    url, router = local_server
    slm = router.catalog.adapter(SMOLLM2).server
    async with RealtimeClient(url) as client:
        await collect_until(client, lambda e: e["type"] == "session.created")
        await client.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text",
                                                            "text": "Tell me a long story about a dragon."}]}})
        await client.send({"type": "response.create"})
        await collect_until(client, lambda e: e["type"] == "response.output_audio_transcript.delta", timeout=60)
        pid = slm.pid
        os.kill(pid, signal.SIGKILL)  # mid-answer: SmolLM2 has begun
        events = await collect_until(client, lambda e: e["type"] == "response.done", timeout=120)
        done = events[-1]["response"]
        transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
        # what SmolLM2 had said stands, then the embedded responder answers the same question
        assert "I heard: Tell me a long story about a dragon." in transcript
        assert not transcript.startswith("I heard")
        assert done["status"] == "completed"
        assert any(e["type"] == "response.output_audio.delta" for e in events)

        async with asyncio.timeout(60):  # the supervisor restarts the process
            while slm.state != "ready" or slm.pid == pid:
                await asyncio.sleep(0.05)
        assert slm.restarts >= 1
        reply, _ = await _turn(client, "What is the capital of France?")
        # SmolLM2's again (the conversation does not stick to the stand-in); the embedded one says "I heard: ..."
        assert "paris" in reply.lower() and not reply.startswith("I heard")


@contextlib.contextmanager
def _primary(router, role: Role, model: str):
    """The role's model for this server's callers (developer-light: the anonymous tenant), locked meanwhile."""
    override = Override(Scope.TENANT, ANONYMOUS, role, model, locked=True, reason="test")
    router.state.overrides.put(override)
    try:
        yield
    finally:
        router.state.overrides.remove(Scope.TENANT, ANONYMOUS, role)


def _espeak_children() -> list[int]:
    """espeak-ng processes this test process started (the server runs in one of its threads)."""
    return [pid for pid, cmdline in children(os.getpid()) if "espeak" in cmdline]


async def test_a_recogniser_killed_mid_utterance_still_transcribes_and_answers_the_turn(local_server):
    """pocketsphinx first: its decoding processes are killed while the user speaks; Whisper recognises the whole
    utterance from the audio kept, and the turn is answered."""
    url, router = local_server
    pcm, rate = speech("goforward.wav")
    pcm24 = resample(pcm, rate, 24000)
    half = len(pcm24) // 2
    with _primary(router, Role.SPEECH_RECOGNITION, POCKETSPHINX):
        async with RealtimeClient(url) as client:
            await collect_until(client, lambda e: e["type"] == "session.created")
            await client.update_session(somagent={"events": True})
            await client.stream_audio(pcm24[:half], 24000, speed=0)
            await collect_until(client, lambda e: e["type"] == "input_audio_buffer.speech_started")
            pocketsphinx = router.catalog.adapter(POCKETSPHINX)
            async with asyncio.timeout(30):  # the utterance's first pushes have reached a decoding process
                while not any(w.streams for w in pocketsphinx._workers if w.dead is None):
                    await asyncio.sleep(0.01)
            for worker in pocketsphinx._workers:
                os.kill(worker._process.pid, signal.SIGKILL)
            await client.stream_audio(np.concatenate([pcm24[half:], np.zeros(24000, np.int16)]), 24000, speed=0)
            events = await collect_until(client, lambda e: e["type"] == "response.done", timeout=120)
    heard = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert "forward" in normalise(heard["transcript"])  # the whole utterance, not its second half
    words = next(e for e in events if e["type"] == "somagent.input_audio_transcription.words")
    assert words["model"] == WHISPER
    assert events[-1]["response"]["status"] == "completed"


async def test_a_voice_killed_mid_sentence_hands_the_reply_to_the_next_voice(local_server):
    """espeak-ng first: its process is killed while it speaks; Piper says that sentence again and the rest."""
    url, router = local_server
    with _primary(router, Role.SPEECH_SYNTHESIS, ESPEAK):
        async with RealtimeClient(url) as client:
            await collect_until(client, lambda e: e["type"] == "session.created")
            await client.update_session(output_modalities=["audio"], instructions="Answer in three sentences.")
            await client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                               "content": [{"type": "input_text", "text": "Tell me about dragons."}]}})
            await client.send({"type": "response.create"})
            before = await collect_until(client, lambda e: e["type"] == "response.output_audio.delta", timeout=120)
            killed = []
            async with asyncio.timeout(30):
                while not killed:  # espeak-ng speaks each sentence in a process of its own
                    for pid in _espeak_children():
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    await asyncio.sleep(0.005)
            events = before + await collect_until(client, lambda e: e["type"] == "response.done", timeout=120)
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert not [e for e in events if e["type"] == "error"]  # no "continues as text only"
    after_kill = [e for e in events[len(before):] if e["type"] == "response.output_audio.delta"]
    assert sum(len(decode_audio_delta(e)) for e in after_kill) / 24000 > 1.0  # the reply went on in speech
