"""The embedded defaults: what `developer-light` runs with no configuration at all."""

from __future__ import annotations

from adapters.asr.pocketsphinx import PocketsphinxRecognizer
from adapters.llm.embedded import EmbeddedResponder
from adapters.llm.openai_compat import OpenAICompatChat, OpenAICompatConfig
from adapters.tts.espeak import EspeakSynthesizer
from router.catalog import Catalog, ModelEntry
from router.events import EventBus
from router.profiles import ModelProfile, ProfileSet
from router.roles import Role
from router.router import ModelRouter


def default_catalog(llm: OpenAICompatConfig | None = None) -> Catalog:
    catalog = Catalog([
        ModelEntry("embedded-responder", Role.DIALOGUE, "embedded", EmbeddedResponder),
        ModelEntry("pocketsphinx-en-us", Role.SPEECH_RECOGNITION, "embedded", PocketsphinxRecognizer),
        ModelEntry("espeak-ng", Role.SPEECH_SYNTHESIS, "embedded", EspeakSynthesizer),
    ])
    if llm is not None:
        catalog.add(ModelEntry(llm.model, Role.DIALOGUE, "openai-compatible", lambda: OpenAICompatChat(llm)))
    return catalog


def default_profiles(llm: OpenAICompatConfig | None = None) -> ProfileSet:
    dialogue = (
        ModelProfile(Role.DIALOGUE, llm.model, ("embedded-responder",), temperature=0.7, max_tokens=300,
                     credentials_ref="SOMAGENT_LLM_API_KEY")
        if llm is not None
        else ModelProfile(Role.DIALOGUE, "embedded-responder")
    )
    return ProfileSet({
        Role.DIALOGUE: dialogue,
        Role.SPEECH_RECOGNITION: ModelProfile(Role.SPEECH_RECOGNITION, "pocketsphinx-en-us"),
        Role.SPEECH_SYNTHESIS: ModelProfile(Role.SPEECH_SYNTHESIS, "espeak-ng"),
    })


def build_default_router(llm: OpenAICompatConfig | None = None, bus: EventBus | None = None) -> ModelRouter:
    return ModelRouter(default_catalog(llm), default_profiles(llm), bus)
