"""router/defaults.py: the local models come first in developer-light and test, each ahead of its embedded
fallback; production keeps its profiles; SOMAGENT_STACK=light runs the embedded parts alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters.asr.faster_whisper import FasterWhisperConfig, bundled_model_dir
from adapters.llm.base import ChatMessage, ChatRequest
from adapters.llm.local_server import SMOLLM2, LocalServerConfig, bundled_gguf
from adapters.llm.openai_compat import OpenAICompatConfig
from adapters.tts.piper import PiperConfig
from dsp.resample import resample
from router import CallContext, Role, Topic
from router.defaults import (
    EMBEDDED,
    ESPEAK,
    PIPER,
    POCKETSPHINX,
    WHISPER,
    LocalModels,
    Stack,
    build_default_router,
    stack_from_env,
    whisper_from_env,
)
from router.modes import DeploymentMode
from tests.helpers import speech
from tests.router.router_testkit import drain

CTX = CallContext(tenant="t", persona="p", conversation_id="c", session_id="s")
DEV, TEST, PROD = DeploymentMode.DEVELOPER_LIGHT, DeploymentMode.TEST, DeploymentMode.PRODUCTION


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
    assert router.store is not None and router.store.schema_revision() == "0002_benchmark_capsules"
    await router.aclose()


def _candidates(router, role: Role, mode: DeploymentMode) -> tuple[str, ...]:
    return router.state.profile(role, mode).candidates


def test_the_stack_setting():
    assert stack_from_env({}) is Stack.MODELS
    assert stack_from_env({"SOMAGENT_STACK": "light"}) is Stack.LIGHT
    assert stack_from_env({"SOMAGENT_STACK": " Models "}) is Stack.MODELS
    with pytest.raises(ValueError, match="SOMAGENT_STACK"):
        stack_from_env({"SOMAGENT_STACK": "heavy"})
    assert LocalModels.from_env({"SOMAGENT_STACK": "light"}) is None
    local = LocalModels.from_env({"SOMAGENT_PIPER_VOICE": "joe"})
    assert local is not None and local.piper == PiperConfig(default_voice="joe")
    assert Path(local.whisper.model_dir) == bundled_model_dir()


def test_piper_speaks_first_in_developer_light_and_test_with_espeak_behind_it():
    router = build_default_router(database_url=None, whisper=None, local=LocalModels.from_env({}))
    for mode in (DEV, TEST):
        assert _candidates(router, Role.SPEECH_SYNTHESIS, mode) == (PIPER, ESPEAK)
    assert _candidates(router, Role.SPEECH_SYNTHESIS, PROD) == (ESPEAK,)
    assert router.catalog.entry(PIPER).price.input == 0.0


def test_the_light_stack_is_todays_embedded_parts():
    router = build_default_router(database_url=None, whisper=None, local=None)
    for mode in DeploymentMode:
        assert _candidates(router, Role.SPEECH_SYNTHESIS, mode) == (ESPEAK,)
        assert _candidates(router, Role.SPEECH_RECOGNITION, mode) == (POCKETSPHINX,)
    assert PIPER not in router.catalog and WHISPER not in router.catalog


async def test_piper_serves_synthesis_through_the_router():
    router = build_default_router(database_url=None, mode="test", whisper=None, local=LocalModels(piper=PiperConfig()))
    await router.start()
    try:
        blocks = [(pcm, rate) async for pcm, rate in router.synthesize("Good morning.", CTX, "marin")]
        assert blocks and {rate for _, rate in blocks} == {22050}
        assert sum(len(pcm) for pcm, _ in blocks) > 0.4 * 22050
        assert router.sticky.get("c", Role.SPEECH_SYNTHESIS).model == PIPER
    finally:
        await router.aclose()


async def test_a_piper_without_voices_falls_back_to_espeak(tmp_path):
    empty = tmp_path / "voices"
    empty.mkdir()
    no_voices = PiperConfig(packages=False, voices_dir=str(empty))  # as if no voice package were installed
    router = build_default_router(database_url=None, mode="test", whisper=None, local=LocalModels(piper=no_voices))
    sub = router.bus.subscribe({Topic.FALLBACK_USED})
    await router.start()
    try:
        pcm = np.concatenate([p async for p, _rate in router.synthesize("Good morning.", CTX)])
        assert len(pcm) > 0.3 * 22050
        (fallback,) = [e.payload for e in drain(sub)]
        assert (fallback["failed_model"], fallback["next_model"]) == (PIPER, ESPEAK)
        assert "no Piper voice" in fallback["reason"]
    finally:
        await router.aclose()


def test_whisper_tiny_en_recognises_first_in_developer_light_and_test_with_pocketsphinx_behind_it():
    router = build_default_router(database_url=None, whisper=None, local=LocalModels.from_env({}))
    for mode in (DEV, TEST):
        assert _candidates(router, Role.SPEECH_RECOGNITION, mode) == (WHISPER, POCKETSPHINX)
    assert _candidates(router, Role.SPEECH_RECOGNITION, PROD) == (POCKETSPHINX,)
    assert Path(router.catalog.adapter(WHISPER).config.model_dir) == bundled_model_dir()


def test_somagent_whisper_model_overrides_the_model_in_every_mode(tmp_path):
    env = {"SOMAGENT_WHISPER_MODEL": str(tmp_path), "SOMAGENT_WHISPER_BEAM_SIZE": "2"}
    router = build_default_router(database_url=None, whisper=whisper_from_env(env), local=LocalModels.from_env(env))
    for mode in DeploymentMode:
        assert _candidates(router, Role.SPEECH_RECOGNITION, mode) == (WHISPER, POCKETSPHINX)
    config = router.catalog.adapter(WHISPER).config
    assert (config.model_dir, config.beam_size) == (str(tmp_path), 2)
    assert LocalModels.from_env(env).whisper.beam_size == 2  # the tuning applies to tiny.en too


async def test_a_missing_whisper_model_directory_falls_back_to_pocketsphinx(tmp_path):
    missing = FasterWhisperConfig(model_dir=str(tmp_path / "gone"))
    router = build_default_router(database_url=None, mode="test", whisper=None, local=LocalModels(whisper=missing))
    sub = router.bus.subscribe({Topic.FALLBACK_USED})
    await router.start()
    try:
        stream = router.recognizer(CTX).stream()
        assert stream.model == POCKETSPHINX
        pcm, rate = speech("goforward.wav")
        await stream.push(resample(pcm, rate, 16000))
        assert "forward" in (await stream.finish()).text
        (fallback,) = [e.payload for e in drain(sub)]
        assert (fallback["failed_model"], fallback["next_model"]) == (WHISPER, POCKETSPHINX)
        assert "does not exist" in fallback["reason"]
    finally:
        await router.aclose()


def test_smollm2_answers_first_in_developer_light_and_test_and_production_keeps_its_profiles():
    local = LocalModels.from_env({})
    router = build_default_router(database_url=None, whisper=None, local=local)
    for mode in (DEV, TEST):
        profile = router.state.profile(Role.DIALOGUE, mode)
        assert profile.candidates == (SMOLLM2, EMBEDDED)
        assert (profile.temperature, profile.max_tokens) == (0.2, 200)
        assert _candidates(router, Role.SUMMARY, mode) == (EMBEDDED,)  # the other LLM roles are unchanged
    assert _candidates(router, Role.DIALOGUE, PROD) == (EMBEDDED,)
    assert router.catalog.entry(SMOLLM2).describe()["adapter"] == "llama-cpp"
    assert Path(router.catalog.adapter(SMOLLM2).config.model_path) == bundled_gguf()
    remote = OpenAICompatConfig(base_url="http://127.0.0.1:9/v1", model="gpt-4o-mini")
    router = build_default_router(remote, database_url=None, whisper=None, local=local)
    assert _candidates(router, Role.DIALOGUE, DEV) == ("gpt-4o-mini", SMOLLM2, EMBEDDED)
    assert _candidates(router, Role.DIALOGUE, PROD) == ("gpt-4o-mini",)


def test_somagent_slm_model_names_another_gguf(tmp_path):
    gguf = tmp_path / "other-model.Q4.gguf"
    gguf.write_bytes(b"")
    slm = LocalModels.from_env({"SOMAGENT_SLM_MODEL": str(gguf), "SOMAGENT_SLM_THREADS": "2"}).slm
    assert (slm.model_path, slm.name, slm.cpu_threads) == (str(gguf), "other-model.Q4", 2)
    with pytest.raises(ValueError, match="SOMAGENT_SLM_THREADS"):
        LocalModels.from_env({"SOMAGENT_SLM_THREADS": "many"})


async def test_the_embedded_responder_answers_while_the_local_model_is_not_up(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    local = LocalModels(slm=LocalServerConfig(model_path=str(junk), restart_delays_s=(60.0,)))
    router = build_default_router(database_url=None, mode="test", whisper=None, local=local)
    sub = router.bus.subscribe({Topic.FALLBACK_USED})
    await router.start()  # starting the process is attempted; a model that cannot load does not hold start-up
    try:
        request = ChatRequest((ChatMessage("user", "hello"),))
        text = "".join([c.text async for c in router.stream_chat(Role.DIALOGUE, request, CTX)])
        assert text.startswith("Hello!")
        (fallback,) = [e.payload for e in drain(sub)]
        assert (fallback["failed_model"], fallback["next_model"]) == (SMOLLM2, EMBEDDED)
    finally:
        await router.aclose()
