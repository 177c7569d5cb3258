"""The official `openai` SDK is our conformance client: it must work against us unchanged."""

import asyncio
import base64

import numpy as np
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from dsp import resample
from tests.helpers import speech

STRICT = TypeAdapter(RealtimeServerEvent)

USER_TURN = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.done",
]
RESPONSE_HEAD = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]
RESPONSE_TAIL = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
]


async def test_sdk_speech_round_trip(server_url):
    client = AsyncOpenAI(base_url=f"{server_url}/v1", api_key="sk-anything")
    received = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        first = await conn.recv()
        assert first.type == "session.created"
        await conn.session.update(session={"type": "realtime", "instructions": "Be brief.",
                                           "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}})
        pcm, rate = speech("goforward.wav")
        pcm24 = resample(np.concatenate([pcm, np.zeros(rate, np.int16)]), rate, 24000)

        async def send_audio():
            for i in range(0, len(pcm24), 480 * 5):  # 100 ms chunks, faster than real time
                await conn.input_audio_buffer.append(audio=base64.b64encode(pcm24[i:i + 2400].tobytes()).decode())
                await asyncio.sleep(0.01)

        sender = asyncio.create_task(send_audio())
        async with asyncio.timeout(60):
            async for event in conn:
                received.append(event)
                if event.type == "response.done":
                    break
        await sender

    kinds = [e.type for e in received]
    # every event parses strictly into the SDK's own types
    for event in [first, *received]:
        STRICT.validate_python(event.model_dump(mode="json", exclude_unset=True))
    assert kinds[0] == "session.updated"
    streamed = ("response.output_audio.delta", "response.output_audio_transcript.delta",
                "conversation.item.input_audio_transcription.delta")
    body = [k for k in kinds if k not in streamed]
    assert body[1:] == [k for k in USER_TURN if k not in streamed] + RESPONSE_HEAD + RESPONSE_TAIL
    # the transcript comes as deltas (live ones while the user speaks: tests/voice/test_session.py) before `completed`
    deltas = [i for i, k in enumerate(kinds) if k == "conversation.item.input_audio_transcription.delta"]
    assert deltas and deltas[0] < kinds.index("conversation.item.input_audio_transcription.completed")
    completed = next(e for e in received if e.type == "conversation.item.input_audio_transcription.completed")
    assert "forward" in completed.transcript
    audio = b"".join(base64.b64decode(e.delta) for e in received if e.type == "response.output_audio.delta")
    assert len(audio) > 24000 * 2 * 0.5  # at least half a second of spoken reply
    assert np.abs(np.frombuffer(audio, "<i2")).max() > 1000  # and it is not silence
    done = received[-1]
    assert done.response.status == "completed"
    transcript = next(e for e in received if e.type == "response.output_audio_transcript.done").transcript
    assert "forward" in transcript
    # deltas sit between content_part.added and output_audio.done
    first_delta = kinds.index("response.output_audio.delta")
    assert kinds.index("response.content_part.added") < first_delta < kinds.index("response.output_audio.done")


async def test_sdk_text_item_and_text_modality(server_url):
    client = AsyncOpenAI(base_url=f"{server_url}/v1", api_key="sk-anything")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.conversation.item.create(item={"type": "message", "role": "user",
                                                  "content": [{"type": "input_text", "text": "what time is it"}]})
        await conn.response.create(response={"output_modalities": ["text"]})
        events = []
        async with asyncio.timeout(30):
            async for event in conn:
                events.append(event)
                if event.type == "response.done":
                    break
    for event in events:
        STRICT.validate_python(event.model_dump(mode="json", exclude_unset=True))
    kinds = [e.type for e in events]
    assert "response.output_audio.delta" not in kinds
    text = next(e for e in events if e.type == "response.output_text.done").text
    assert text.startswith("It's ") and ":" in text
    assert events[-1].response.output[0].content[0].type == "output_text"
