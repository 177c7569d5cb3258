"""Turn-taking: two utterances make two turns; speaking over the agent cancels and truncates its reply."""

import asyncio

import numpy as np
import soundfile as sf

from tests.e2e.helpers import collect_until, types
from tests.helpers import SPEECH, speech
from voice.client import RealtimeClient
from voice.replay import replay_file

TRANSCRIBED = "conversation.item.input_audio_transcription.completed"


async def test_two_utterances_make_two_turns(server_url, tmp_path):
    a, rate = speech("cards-001.wav")
    b, _ = speech("goforward.wav")
    path = tmp_path / "two-turns.wav"
    sf.write(path, np.concatenate([a, np.zeros(int(2.5 * rate), np.int16), b]), rate, subtype="PCM_16")
    result = await replay_file(server_url, path, speed=2.0)
    assert result.error is None
    user_turns = [t for t in result.turns if t.item_id]
    assert len(user_turns) == 2, [t.user_transcript for t in result.turns]
    assert "forward" in user_turns[1].user_transcript
    assert all(t.assistant_transcript for t in user_turns)


async def test_barge_in_cancels_and_the_client_truncates(server_url):
    pcm, rate = speech("goforward.wav")
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        await client.update_session(somagent={"events": True})
        # long enough that synthesis (faster than real time, ~50 ms a sentence here) is still running when
        # the barge-in is confirmed (the echo gate may hold a quiet onset for a few hundred ms)
        long_text = " ".join(["The quick brown fox jumps over the lazy dog."] * 60)
        await client.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": long_text}]}})
        await client.send({"type": "response.create"})
        head = await collect_until(client, lambda e: e["type"] == "response.output_audio.delta")
        response_id = head[-1]["response_id"]
        item_id = head[-1]["item_id"]
        sender = asyncio.create_task(client.stream_audio(np.concatenate([pcm, np.zeros(rate, np.int16)]), rate))
        events = await collect_until(client, lambda e: e["type"] == "response.done"
                                     and e["response"]["id"] == response_id, timeout=30)
        kinds = types(events)
        assert "input_audio_buffer.speech_started" in kinds
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
        done = events[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"]["reason"] == "turn_detected"
        assert "conversation.item.truncated" not in kinds  # over a WebSocket the client says what it played
        sent_ms = sum(len(e["delta"]) * 3 / 4 / 2 / 24 for e in head + events
                      if e["type"] == "response.output_audio.delta" and e["response_id"] == response_id)
        played_ms = int(sent_ms / 4)
        await client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                           "audio_end_ms": played_ms})
        # after the cancel, no more audio for that response
        after = await collect_until(client, lambda e: e["type"] == "response.done", timeout=30)
        assert not any(e["type"] == "response.output_audio.delta" and e["response_id"] == response_id for e in after)
        await sender
        after += await collect_until(client, lambda e: e["type"] == "conversation.item.truncated", timeout=30) \
            if not any(e["type"] == "conversation.item.truncated" for e in after) else []
        assert "error" not in types(after)
        (truncated,) = [e for e in events + after if e["type"] == "conversation.item.truncated"]
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (item_id, played_ms)
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        got = await collect_until(client, lambda e: e["type"] == "conversation.item.retrieved", timeout=30)
        kept = got[-1]["item"]["content"][0]["transcript"]
        generated = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
        assert len(generated.split()) > 100
        assert len(kept.split()) < len(generated.split()) / 2  # the unheard part of the reply is gone


async def test_manual_commit_without_turn_detection(server_url):
    pcm, rate = speech("cards-003.wav")
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        await client.update_session(audio={"input": {"turn_detection": None}})
        await collect_until(client, lambda e: e["type"] == "session.updated")
        await client.send({"type": "input_audio_buffer.commit", "event_id": "evt_empty"})
        err = await collect_until(client, lambda e: e["type"] == "error")
        assert err[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
        assert err[-1]["error"]["event_id"] == "evt_empty"
        await client.stream_audio(pcm, rate, speed=0)
        await client.send({"type": "input_audio_buffer.commit"})
        events = await collect_until(client, lambda e: e["type"] == TRANSCRIBED)
        assert "input_audio_buffer.speech_started" not in types(events)  # no VAD in manual mode
        assert "clubs" in events[-1]["transcript"] or "seven" in events[-1]["transcript"]
        # no response without turn detection's create_response: the client asks
        await client.send({"type": "response.create"})
        done = await collect_until(client, lambda e: e["type"] == "response.done")
        assert done[-1]["response"]["status"] == "completed"


async def test_response_cancel_by_client(server_url):
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        await client.send({"type": "response.cancel"})
        err = await collect_until(client, lambda e: e["type"] == "error")
        assert err[-1]["error"]["code"] == "response_cancel_not_active"
        await client.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello " * 200}]}})
        await client.send({"type": "response.create"})
        await collect_until(client, lambda e: e["type"] == "response.created")
        await client.send({"type": "response.create"})
        await client.send({"type": "response.cancel"})
        events = await collect_until(client, lambda e: e["type"] == "response.done")
        errors = [e for e in events if e["type"] == "error"]
        assert errors and errors[0]["error"]["code"] == "conversation_already_has_active_response"
        assert events[-1]["response"]["status"] == "cancelled"
        assert events[-1]["response"]["status_details"]["reason"] == "client_cancelled"


async def test_silero_vad_chosen_per_session(server_url):
    silero = {"audio": {"input": {"turn_detection": {"type": "server_vad", "vad": "silero"}}}}
    result = await replay_file(server_url, SPEECH / "goforward.wav", speed=0, session=silero)
    assert result.error is None and not result.session_errors
    assert len(result.turns) == 1 and "forward" in result.turns[0].user_transcript


async def test_audio_features_event_per_utterance(server_url):
    pcm, rate = speech("goforward.wav")
    async with RealtimeClient(server_url) as client:
        await client.recv(timeout=10)
        await client.update_session(somagent={"events": True})
        await client.stream_audio(np.concatenate([pcm, np.zeros(rate, np.int16)]), rate, speed=0)
        events = await collect_until(client, lambda e: e["type"] == "somagent.turn.metrics", timeout=60)
    kinds = types(events)
    features = next(e for e in events if e["type"] == "somagent.audio.features")
    assert kinds.index("somagent.audio.features") < kinds.index("input_audio_buffer.committed")
    assert features["item_id"] == next(e for e in events if e["type"] == "input_audio_buffer.committed")["item_id"]
    assert features["label"] == "normal"
    assert -40 < features["mean_rms_dbfs"] < -5 and features["peak_rms_dbfs"] >= features["mean_rms_dbfs"]
    utterance_seconds = features["duration_s"]  # audio length, not a timing
    assert 1.0 < utterance_seconds < 4.0 and 1.0 < features["speech_rate_hz"] < 9.0
    assert 0.0 < features["mean_spectral_entropy"] < 1.0
    assert events[-1]["audio"] == {k: v for k, v in features.items() if k not in ("type", "item_id", "event_id")}
    assert not any("audio" in k and isinstance(v, str) and len(v) > 1000 for k, v in features.items())  # no raw audio
