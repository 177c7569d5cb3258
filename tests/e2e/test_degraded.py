"""When a part fails the conversation goes on: text without speech, or a spoken apology."""


from adapters.asr.pocketsphinx import PocketsphinxRecognizer
from adapters.llm.embedded import EmbeddedResponder
from adapters.llm.openai_compat import OpenAICompatChat, OpenAICompatConfig
from adapters.tts.espeak import EspeakConfig, EspeakSynthesizer
from router import CallContext
from router.catalog import Catalog, ModelEntry
from router.compose import compose_router
from router.profiles import ModelProfile, ProfileSet
from router.roles import Role
from router.router import ModelRouter
from tests.e2e.helpers import collect_until, server_thread
from voice.client import RealtimeClient
from voice.config import Settings
from voice.serving import free_port


def _router(dialogue: list[tuple[str, object]], tts_binary: str = "espeak-ng") -> ModelRouter:
    entries = [ModelEntry(name, Role.DIALOGUE, "test", factory) for name, factory in dialogue]
    entries += [ModelEntry("pocketsphinx-en-us", Role.SPEECH_RECOGNITION, "embedded", PocketsphinxRecognizer),
                ModelEntry("tts", Role.SPEECH_SYNTHESIS, "embedded",
                           lambda: EspeakSynthesizer(EspeakConfig(binary=tts_binary)))]
    names = [n for n, _ in dialogue]
    profiles = ProfileSet({Role.DIALOGUE: ModelProfile(Role.DIALOGUE, names[0], tuple(names[1:])),
                           Role.SPEECH_RECOGNITION: ModelProfile(Role.SPEECH_RECOGNITION, "pocketsphinx-en-us"),
                           Role.SPEECH_SYNTHESIS: ModelProfile(Role.SPEECH_SYNTHESIS, "tts")})
    return compose_router(Catalog(entries), profiles)


async def _ask(url: str, text: str) -> list[dict]:
    async with RealtimeClient(url) as client:
        await client.recv(timeout=10)
        await client.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
        await client.send({"type": "response.create"})
        return await collect_until(client, lambda e: e["type"] == "response.done", timeout=60)


def _dead_llm() -> OpenAICompatChat:
    # a real connection to a loopback port where nothing listens: the provider is down
    config = OpenAICompatConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="gone", timeout_s=5)
    return OpenAICompatChat(config)


async def test_reply_goes_out_as_text_when_synthesis_fails():
    router = _router([("embedded", EmbeddedResponder)], "/nonexistent/espeak-ng")
    with server_thread(Settings(warmup=False), router) as url:
        events = await _ask(url, "ten of clubs")
    kinds = [e["type"] for e in events]
    assert "response.output_audio.delta" not in kinds
    err = next(e for e in events if e["type"] == "error")
    assert err["error"]["code"] == "tts_unavailable"
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert transcript.startswith("I heard: ten of clubs.")
    assert events[-1]["response"]["status"] == "completed"


async def test_failed_provider_falls_back_before_any_output():
    router = _router([("remote", _dead_llm), ("embedded", EmbeddedResponder)])
    with server_thread(Settings(warmup=False), router) as url:
        events = await _ask(url, "go forward")
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert transcript.startswith("I heard: go forward.")
    assert events[-1]["response"]["status"] == "completed"


async def test_every_dialogue_model_down_gives_a_spoken_apology():
    with server_thread(Settings(warmup=False), _router([("remote", _dead_llm)])) as url:
        events = await _ask(url, "go forward")
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert transcript.startswith("Sorry")
    assert any(e["type"] == "response.output_audio.delta" for e in events)  # the apology is spoken
    done = events[-1]["response"]
    assert done["status"] == "failed"
    assert done["status_details"]["error"]["code"] == "model_unavailable"


async def test_broken_whisper_model_falls_back_to_pocketsphinx(tmp_path, caplog):
    from adapters.asr.faster_whisper import FasterWhisperConfig
    from router.defaults import build_default_router
    from tests.helpers import SPEECH
    from voice.replay import replay_file

    broken = tmp_path / "whisper"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"")
    router = build_default_router(whisper=FasterWhisperConfig(model_dir=str(broken)), database_url=None)
    assert router.candidates(Role.SPEECH_RECOGNITION, CallContext())[0] == "faster-whisper"
    with caplog.at_level("WARNING"), server_thread(Settings(), router) as url:
        result = await replay_file(url, SPEECH / "goforward.wav", speed=0)
    assert result.error is None
    (turn,) = result.turns
    assert "forward" in turn.user_transcript and turn.assistant_transcript
    assert turn.server_metrics["asr_model"] == "pocketsphinx-en-us"
    assert any("faster-whisper" in r.getMessage() and "unavailable" in r.getMessage() for r in caplog.records)
