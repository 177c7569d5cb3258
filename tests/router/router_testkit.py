"""Helpers shared by the router tests: in-process fake adapters and a compact router builder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace

import numpy as np

from adapters.errors import AdapterError
from adapters.llm.base import ChatChunk, ChatMessage, ChatModel, ChatRequest, ChatUsage
from adapters.llm.openai_compat import OpenAICompatChat, OpenAICompatConfig
from adapters.tts.base import SpeechSynthesizer
from router.catalog import Catalog, ModelEntry, Price, Unit
from router.clock import Clock
from router.compose import compose_router
from router.context import CallContext
from router.events import EventBus, Subscription
from router.modes import DeploymentMode, make_policies
from router.profiles import ModelProfile, ProfileSet
from router.roles import Role
from router.router import ModelRouter
from router.settings import RouterSettings
from router.telemetry import CallRecord, Outcome

REQUEST = ChatRequest(messages=(ChatMessage("user", "hello there"),))


class ScriptedChat(ChatModel):
    """In-process chat model: answers `text`, or fails with `error` (an AdapterError outcome)."""

    def __init__(self, name: str, text: str = "hi there", error: str | None = None, delay_s: float = 0.0) -> None:
        self.name = name
        self.text = text
        self.error = error
        self.delay_s = delay_s
        self.calls = 0

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise AdapterError(f"{self.name} failed", outcome=self.error)
        for word in self.text.split(" "):
            yield ChatChunk(text=word + " ")
        yield ChatChunk(usage=ChatUsage(10, 2), finish_reason="stop")


class ScriptedTTS(SpeechSynthesizer):
    sample_rate = 16000

    def __init__(self, name: str, fail: bool = False, delay_s: float = 0.0) -> None:
        self.name = name
        self.fail = fail
        self.delay_s = delay_s
        self.calls = 0

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[np.ndarray]:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise AdapterError(f"{self.name} failed")
        yield np.zeros(160, dtype=np.int16)
        yield np.ones(160, dtype=np.int16)


def chat_entry(
    name: str,
    adapter: ChatModel | None = None,
    *,
    price: tuple[float, float] | None = (0.001, 0.002),
    quality: float | None = 0.8,
    safety: Iterable[str] = (),
    last_resort: bool = False,
    roles: Iterable[Role] = (),
) -> ModelEntry:
    model = adapter or ScriptedChat(name)
    return ModelEntry(
        name,
        Role.DIALOGUE,
        "test",
        lambda: model,
        price=None if price is None else Price(Unit.TOKENS_1K, *price, "test"),
        adapter="scripted",
        roles=frozenset(roles),
        quality=quality,
        safety=frozenset(safety),
        last_resort=last_resort,
    )


def http_entry(
    name: str, base_url: str, *, price: tuple[float, float] | None = (0.001, 0.002), quality: float | None = 0.8
) -> ModelEntry:
    config = OpenAICompatConfig(base_url=base_url, model=name, api_key="test-key", timeout_s=10.0)
    return ModelEntry(
        name,
        Role.DIALOGUE,
        "fake-http",
        lambda: OpenAICompatChat(config),
        price=None if price is None else Price(Unit.TOKENS_1K, *price, "test"),
        adapter="openai-compatible",
        quality=quality,
    )


def make_router(
    entries: list[ModelEntry],
    dialogue: tuple[str, ...],
    *,
    clock: Clock,
    extra: dict[Role, ModelProfile] | None = None,
    settings: RouterSettings | None = None,
    bus: EventBus | None = None,
    first_output_s: float | None = None,
    stall_s: float | None = None,
) -> ModelRouter:
    profiles = {
        Role.DIALOGUE: ModelProfile(
            Role.DIALOGUE,
            dialogue[0],
            tuple(dialogue[1:]),
            first_output_deadline_s=first_output_s,
            stall_timeout_s=stall_s,
        )
    }
    profiles.update(extra or {})
    settings = settings or RouterSettings(mode=DeploymentMode.TEST)
    policies = make_policies(
        ProfileSet(profiles), selection_weights=settings.selection_weights, stale_after_s=settings.stale_after_s
    )
    return compose_router(Catalog(entries), bus=bus, policies=policies, settings=settings, clock=clock)


def feed(
    router: ModelRouter,
    model: str,
    n: int,
    *,
    ttft_ms: float = 300.0,
    ok: bool = True,
    role: Role = Role.DIALOGUE,
    age_s: float = 0.0,
) -> None:
    """Record `n` calls of `model` that happened `age_s` ago, costed at its catalogue price (None if unknown)."""
    now = router.clock() - age_s
    entry = router.catalog.get(model)
    cost = entry.price.cost(500, 50) if entry is not None and entry.price is not None else None
    for _ in range(n):
        router.record(
            CallRecord(
                ts=now,
                role=role,
                model=model,
                outcome=Outcome.OK if ok else Outcome.ERROR,
                latency_ms=ttft_ms * 2,
                ttft_ms=ttft_ms,
                units_in=500,
                units_out=50,
                cost=cost,
            ),
            publish=False,
        )


def drain(sub: Subscription) -> list:
    out = []
    for _ in range(sub.queue.qsize()):
        out.append(sub.queue.get_nowait())
    return out


async def collect(router: ModelRouter, ctx: CallContext, request: ChatRequest = REQUEST) -> str:
    return "".join([c.text async for c in router.stream_chat(Role.DIALOGUE, request, ctx)])


def with_settings(**kwargs: object) -> RouterSettings:
    return replace(RouterSettings(mode=DeploymentMode.TEST), **kwargs)
