"""Capacity over a real server: a stalled recogniser holds up nobody else, admission refuses clearly and admits
again, recognition runs only when something needs it, and /metrics moves with the traffic. (The load monitor on
its own: tests/voice/test_capacity.py.)"""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from adapters.asr.base import RecognitionOptions, RecognitionStream, SpeechRecognizer, Transcript
from adapters.asr.pocketsphinx import PocketsphinxConfig, PocketsphinxRecognizer
from router import Role
from router.catalog import ModelEntry
from router.defaults import build_default_router
from router.profiles import ModelProfile
from tests.doubles import stalled_sphinx_worker
from tests.e2e.helpers import collect_until, server_thread, types
from tests.e2e.webrtc.offers import make_offer
from tests.helpers import speech
from voice.capacity import CapacityLimits
from voice.client import RealtimeClient, ws_url
from voice.config import Settings

VAD_ONLY = {"audio": {"input": {"transcription": None,
                                "turn_detection": {"type": "server_vad", "create_response": False}}}}


def _router_with_recognizer(name: str, factory) -> object:
    router = build_default_router(database_url=None)
    router.catalog.add(ModelEntry(name, Role.SPEECH_RECOGNITION, "test", factory))
    router.state.custom_profiles[router.mode] = {
        Role.SPEECH_RECOGNITION: ModelProfile(Role.SPEECH_RECOGNITION, name, ())}
    return router


def _long_speech(seconds: float) -> tuple[np.ndarray, int]:
    pcm, rate = speech("goforward.wav")
    reps = int(np.ceil(seconds * rate / len(pcm)))
    return np.tile(pcm, reps), rate


async def test_stalled_recogniser_worker_holds_up_no_other_session():
    """The worker answers once and then stops reading: one session's audio piles up behind it. Another
    session's VAD events and /healthz still come while the worker is stalled."""
    router = _router_with_recognizer("stalled-sphinx", lambda: PocketsphinxRecognizer(
        PocketsphinxConfig(workers=1, serve=stalled_sphinx_worker.serve, stop_timeout_s=0.5)))
    # the stalled worker is 100 % busy, which admission would rightly hold against new sessions; both are in first
    settings = Settings(capacity=CapacityLimits(max_asr_busy=1.0, max_asr_backlog_s=1e6))
    with server_thread(settings, router=router) as url:
        async with (RealtimeClient(url) as a, RealtimeClient(url) as b,
                    httpx.AsyncClient(base_url=url, timeout=10) as http):
            await collect_until(a, lambda e: e["type"] == "session.created")
            await collect_until(b, lambda e: e["type"] == "session.created")
            pcm, rate = _long_speech(20.0)
            await a.stream_audio(pcm, rate, speed=0)  # 20 s of speech for a worker that reads no more
            await collect_until(a, lambda e: e["type"] == "input_audio_buffer.speech_started")

            pcm_b, rate_b = speech("goforward.wav")
            await b.stream_audio(pcm_b, rate_b, speed=0)
            await b.stream_audio(np.zeros(rate_b, dtype=np.int16), rate_b, speed=0)
            events = await collect_until(b, lambda e: e["type"] == "input_audio_buffer.speech_stopped", timeout=20)
            assert "input_audio_buffer.speech_started" in types(events)

            health = (await http.get("/healthz")).json()
            assert health["status"] == "ok"
            assert health["load"]["asr_busy"]["stalled-sphinx"] > 0  # the worker is still stalled, its requests
            assert health["load"]["asr_backlog_s"]["stalled-sphinx"] > 0.4  # unanswered: the events did not wait
            assert health["load"]["session_asr_backlog_max_s"] > 1.0  # A's audio waits in A's session
            assert health["ready"] is True  # two sessions, limits lifted for this test


async def _refused(url: str) -> tuple[dict, int, str]:
    async with websockets.connect(ws_url(url), open_timeout=10) as ws:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        return event, ws.close_code, ws.close_reason


async def test_at_capacity_sessions_and_calls_are_refused_and_a_freed_slot_admits_again():
    with server_thread(Settings(capacity=CapacityLimits(max_sessions=2, retry_after_s=3))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            first = await RealtimeClient(url).__aenter__()
            async with RealtimeClient(url) as second:
                for client in (first, second):
                    assert (await client.recv(timeout=10))["type"] == "session.created"
                assert (await http.get("/healthz")).json()["ready"] is False
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.headers["retry-after"] == "3"

                event, code, reason = await _refused(url)
                assert event["type"] == "error" and event["error"]["code"] == "server_busy"
                assert "2 sessions" in event["error"]["message"]
                assert code == 1013 and reason.startswith("server_busy")

                pc, offer = await make_offer()
                r = await http.post("/v1/realtime/calls", content=offer, headers={"Content-Type": "application/sdp"})
                await pc.close()
                assert r.status_code == 503 and r.headers["retry-after"] == "3"
                assert r.json()["error"]["code"] == "server_busy"

                await first.close()  # frees a slot
                for _ in range(100):
                    if (await http.get("/healthz")).json()["ready"]:
                        break
                    await asyncio.sleep(0.05)
                async with RealtimeClient(url) as third:
                    assert (await third.recv(timeout=10))["type"] == "session.created"
            assert (await http.get("/readyz")).status_code == 200


class _CountingStream(RecognitionStream):
    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        return None

    async def finish(self) -> Transcript:
        return Transcript("counted", True)


class _CountingRecognizer(SpeechRecognizer):
    name = "counting-asr"

    def __init__(self) -> None:
        self.opened = 0

    def stream(self, options: RecognitionOptions | None = None) -> RecognitionStream:
        self.opened += 1
        return _CountingStream()


@pytest.mark.parametrize("patch, streams", [(VAD_ONLY, 0), ({}, 1)], ids=["vad-only", "default"])
async def test_recognition_runs_only_when_a_transcript_or_response_needs_it(patch, streams):
    recognizer = _CountingRecognizer()
    router = _router_with_recognizer("counting-asr", lambda: recognizer)
    with server_thread(Settings(), router=router) as url:
        async with RealtimeClient(url) as client:
            if patch:
                await client.update_session(**patch)
            pcm, rate = speech("goforward.wav")
            await client.stream_audio(pcm, rate, speed=0)
            await client.stream_audio(np.zeros(rate, dtype=np.int16), rate, speed=0)
            events = await collect_until(client, lambda e: e["type"] == "conversation.item.done"
                                         and e["item"]["role"] == "user", timeout=30)
            assert "input_audio_buffer.speech_stopped" in types(events)
            assert "input_audio_buffer.committed" in types(events)
            assert recognizer.opened == streams
            completed = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"]
            assert len(completed) == streams


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_parse_and_move_with_traffic():
    with server_thread(Settings(capacity=CapacityLimits(max_sessions=1))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            before = _samples((await http.get("/metrics")).text)
            assert before[("somagent_sessions_active", ())] == 0
            async with RealtimeClient(url) as client:
                await client.send({"type": "session.update",
                                   "session": {"type": "realtime", "somagent": {"events": True}}})
                await client.send({"type": "input_audio_buffer.commit"})  # nothing to commit: an error
                await collect_until(client, lambda e: e["type"] == "error")
                await _refused(url)  # at the limit of one session
                pcm, rate = speech("goforward.wav")
                await client.stream_audio(pcm, rate, speed=0)
                await client.stream_audio(np.zeros(rate, dtype=np.int16), rate, speed=0)
                await collect_until(client, lambda e: e["type"] == "somagent.turn.metrics", timeout=60)
                during = _samples((await http.get("/metrics")).text)
            assert during[("somagent_sessions_active", ())] == 1
            assert during[("somagent_sessions_opened_total", (("transport", "websocket"),))] == \
                before.get(("somagent_sessions_opened_total", (("transport", "websocket"),)), 0) + 1
            refused = ("somagent_sessions_refused_total", (("reason", "sessions"), ("transport", "websocket")))
            assert during[refused] == 1
            assert during[("somagent_errors_total", (("code", "input_audio_buffer_commit_empty"),))] == 1
            for stage in ("end_of_speech_to_final", "final_to_first_token", "first_token_to_first_audio",
                          "voice_to_voice"):
                assert during[("somagent_stage_latency_seconds_count", (("stage", stage),))] == 1, stage
            assert during[("somagent_event_loop_lag_seconds_count", ())] > 0
            workers = [k for k in during if k[0] == "somagent_asr_backlog_seconds"]
            assert workers and all(dict(k[1])["recognizer"] == "pocketsphinx-en-us" for k in workers)
