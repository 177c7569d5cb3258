"""router/failover.py: failover against a real local HTTP server speaking streaming chat completions, through the
openai SDK."""

from __future__ import annotations

import pytest

from router import AllCandidatesFailed, CallContext, Role, StreamInterrupted, Topic
from router.breaker import BreakerState
from router.catalog import ModelEntry, Price, Unit
from router.clock import ManualClock
from router.profiles import ModelProfile
from router.telemetry import Outcome
from tests.router.fake_chat_server import FakeChatServer, Script
from tests.router.router_testkit import REQUEST, ScriptedTTS, collect, drain, http_entry, make_router
from voice.serving import free_port  # a port nothing listens on

CTX = CallContext(tenant="t1", persona="p1", conversation_id="conv-1")


# generous deadlines except where a test is about them: on a loaded 2-core CI machine a 503 once took over 0.6 s
def _router(server: FakeChatServer, clock: ManualClock, *, first_output_s: float = 5.0, stall_s: float = 5.0):
    entries = [
        http_entry("primary", server.base_url, price=(0.003, 0.015)),
        http_entry("backup", server.base_url, price=(0.00015, 0.0006)),
    ]
    return make_router(entries, ("primary", "backup"), clock=clock, first_output_s=first_output_s, stall_s=stall_s)


async def test_streams_from_primary_and_meters_usage_and_cost(fake_chat: FakeChatServer, clock: ManualClock) -> None:
    router = _router(fake_chat, clock)
    sub = router.bus.subscribe({Topic.SLM_METRICS, Topic.SELECTION})
    fake_chat.script("primary", Script(tokens=("Hi", " there"), usage=(120, 30)))
    assert await collect(router, CTX) == "Hi there"
    events = drain(sub)
    metrics = [e.payload for e in events if e.topic == Topic.SLM_METRICS]
    assert [m["model"] for m in metrics] == ["primary"]
    m = metrics[0]
    assert (m["outcome"], m["units_in"], m["units_out"], m["units_estimated"]) == ("ok", 120, 30, False)
    assert m["cost"] == pytest.approx((120 * 0.003 + 30 * 0.015) / 1000)
    assert m["ttft_ms"] is not None and m["ttft_ms"] <= m["latency_ms"]
    assert (m["tenant"], m["persona"], m["conversation_id"]) == ("t1", "p1", "conv-1")
    assert any(e.topic == Topic.SELECTION and e.payload["chosen"] == "primary" for e in events)
    # the profile's request settings reached the provider
    assert fake_chat.requests_for("primary")[0].body["stream"] is True
    await router.aclose()


async def test_http_error_fails_over_before_output(fake_chat: FakeChatServer, clock: ManualClock) -> None:
    router = _router(fake_chat, clock)
    sub = router.bus.subscribe({Topic.FALLBACK_USED, Topic.SLM_METRICS})
    fake_chat.script("primary", Script(status=503))
    fake_chat.script("backup", Script(tokens=("from", " backup")))
    assert await collect(router, CTX) == "from backup"
    events = drain(sub)
    fallback = [e.payload for e in events if e.topic == Topic.FALLBACK_USED]
    assert len(fallback) == 1
    assert (fallback[0]["failed_model"], fallback[0]["next_model"]) == ("primary", "backup")
    assert "503" in fallback[0]["reason"]
    outcomes = [(e.payload["model"], e.payload["outcome"]) for e in events if e.topic == Topic.SLM_METRICS]
    assert outcomes == [("primary", "error"), ("backup", "ok")]
    # the conversation now sticks to the model that answered, and says failover moved it
    assert router.sticky.get("conv-1", Role.DIALOGUE).model == "backup"
    assert router.sticky.get("conv-1", Role.DIALOGUE).reason == "failover"
    await router.aclose()


async def test_slow_first_token_misses_the_deadline_and_fails_over(
    fake_chat: FakeChatServer, clock: ManualClock
) -> None:
    router = _router(fake_chat, clock, first_output_s=0.3)
    sub = router.bus.subscribe({Topic.SLM_METRICS})
    fake_chat.script("primary", Script(first_token_delay_s=5.0))
    fake_chat.script("backup", Script(tokens=("quick",)))
    assert await collect(router, CTX) == "quick"
    outcomes = [(e.payload["model"], e.payload["outcome"]) for e in drain(sub)]
    assert outcomes == [("primary", "timeout"), ("backup", "ok")]
    await router.aclose()


async def test_stall_after_output_raises_stream_interrupted_not_hang(
    fake_chat: FakeChatServer, clock: ManualClock
) -> None:
    router = _router(fake_chat, clock, stall_s=0.3)
    fake_chat.script("primary", Script(tokens=("one", " two", " three"), stall_after=2, stall_s=30.0))
    got: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        async for chunk in router.stream_chat(Role.DIALOGUE, REQUEST, CTX):
            got.append(chunk.text)
    assert "".join(got) == "one two"
    assert info.value.model == "primary" and info.value.reason == "stalled"
    assert isinstance(info.value, AllCandidatesFailed)  # the session's apology path handles it
    assert fake_chat.requests_for("backup") == []  # no failover once the user heard something
    await router.aclose()


async def test_broken_stream_mid_way_is_reported(fake_chat: FakeChatServer, clock: ManualClock) -> None:
    router = _router(fake_chat, clock)
    sub = router.bus.subscribe({Topic.SLM_METRICS})
    fake_chat.script("primary", Script(tokens=("a", "b", "c"), break_after=1))
    with pytest.raises(StreamInterrupted) as info:
        _ = [c async for c in router.stream_chat(Role.DIALOGUE, REQUEST, CTX)]
    assert info.value.reason.startswith("broke")
    assert [e.payload["outcome"] for e in drain(sub)] == ["error"]
    await router.aclose()


async def test_broken_stream_before_output_fails_over(fake_chat: FakeChatServer, clock: ManualClock) -> None:
    router = _router(fake_chat, clock)
    fake_chat.script("primary", Script(tokens=("a", "b"), break_after=0))
    fake_chat.script("backup", Script(tokens=("saved",)))
    assert await collect(router, CTX) == "saved"
    await router.aclose()


async def test_every_candidate_failing_gives_a_clear_error(fake_chat: FakeChatServer, clock: ManualClock) -> None:
    router = _router(fake_chat, clock)
    fake_chat.script("primary", Script(status=500))
    fake_chat.script("backup", Script(status=429))
    with pytest.raises(AllCandidatesFailed) as info:
        await collect(router, CTX)
    assert not isinstance(info.value, StreamInterrupted)
    assert len(info.value.errors) == 2 and "500" in info.value.errors[0] and "429" in info.value.errors[1]
    assert info.value.user_message  # something the session can say
    await router.aclose()


async def test_refusal_is_recorded_and_fails_over_without_hurting_health(
    fake_chat: FakeChatServer, clock: ManualClock
) -> None:
    router = _router(fake_chat, clock)
    sub = router.bus.subscribe({Topic.SLM_METRICS})
    fake_chat.script("primary", Script(refusal="I can't help with that"))
    fake_chat.script("backup", Script(tokens=("ok",)))
    assert await collect(router, CTX) == "ok"
    assert [e.payload["outcome"] for e in drain(sub)] == [Outcome.REFUSAL.value, "ok"]
    assert router.breakers.get("primary").snapshot().failures == 0
    await router.aclose()


async def test_missing_usage_is_estimated_and_flagged(fake_chat: FakeChatServer, clock: ManualClock) -> None:
    router = _router(fake_chat, clock)
    sub = router.bus.subscribe({Topic.SLM_METRICS})
    fake_chat.script("primary", Script(tokens=("twelve chars",), usage=None))
    await collect(router, CTX)
    m = drain(sub)[0].payload
    assert m["units_estimated"] is True and m["units_out"] == 3  # 12 characters / 4
    await router.aclose()


async def test_breaker_opens_and_calls_skip_the_ejected_model(fake_chat: FakeChatServer, clock: ManualClock) -> None:
    router = _router(fake_chat, clock)
    fake_chat.script("primary", Script(status=502))
    fake_chat.script("backup", Script(tokens=("b",)))
    min_calls = router.state.policy.breaker.min_calls
    for i in range(min_calls):
        assert await collect(router, CallContext(conversation_id=f"c{i}")) == "b"
    assert router.breakers.get("primary").state is BreakerState.OPEN
    before = len(fake_chat.requests_for("primary"))
    sub = router.bus.subscribe({Topic.FALLBACK_USED})
    assert await collect(router, CallContext(conversation_id="after")) == "b"
    assert len(fake_chat.requests_for("primary")) == before  # not even tried
    assert drain(sub)[0].payload["reason"] == "circuit open"
    # after the ejection, one probe call is let through (half-open) and success closes the breaker
    clock.advance(router.state.policy.breaker.base_ejection_s + 0.1)
    fake_chat.script("primary", Script(tokens=("p",)))
    assert await collect(router, CallContext(conversation_id="probe1")) == "p"
    assert router.breakers.get("primary").state is BreakerState.HALF_OPEN
    assert await collect(router, CallContext(conversation_id="probe2")) == "p"
    assert router.breakers.get("primary").state is BreakerState.CLOSED
    await router.aclose()


async def test_locked_override_moved_only_by_failover_and_says_so(
    fake_chat: FakeChatServer, clock: ManualClock
) -> None:
    router = _router(fake_chat, clock)
    await router.admin.put_override("tenant", "t1", Role.DIALOGUE, "primary", "tester", locked=True)
    await router.admin.set_auto_selection(True, "tester")
    fake_chat.script("primary", Script(status=500))
    fake_chat.script("backup", Script(tokens=("b",)))
    sub = router.bus.subscribe({Topic.FALLBACK_USED, Topic.SELECTION})
    assert await collect(router, CTX) == "b"
    events = drain(sub)
    selection = next(e.payload for e in events if e.topic == Topic.SELECTION)
    assert (selection["chosen"], selection["source"], selection["locked"]) == ("primary", "locked_override", True)
    fallback = next(e.payload for e in events if e.topic == Topic.FALLBACK_USED)
    assert fallback["locked_override_moved"] is True and "only failover" in fallback["note"]
    await router.aclose()


async def test_tts_fails_over_before_first_audio(clock: ManualClock) -> None:
    bad, good = ScriptedTTS("tts-bad", fail=True), ScriptedTTS("tts-good")
    entries = [
        ModelEntry(
            t.name, Role.SPEECH_SYNTHESIS, "test", (lambda t=t: t), price=Price(Unit.CHARACTER, 0.000015, 0.0, "test")
        )
        for t in (bad, good)
    ]
    entries.append(http_entry("primary", "http://127.0.0.1:9/v1"))
    router = make_router(
        entries,
        ("primary",),
        clock=clock,
        extra={Role.SPEECH_SYNTHESIS: ModelProfile(Role.SPEECH_SYNTHESIS, "tts-bad", ("tts-good",))},
    )
    sub = router.bus.subscribe({Topic.SLM_METRICS, Topic.FALLBACK_USED})
    blocks = [(len(pcm), rate) async for pcm, rate in router.synthesize("Hello world", CTX)]
    assert blocks == [(160, 16000), (160, 16000)]
    events = drain(sub)
    assert [e.topic for e in events] == [Topic.SLM_METRICS, Topic.FALLBACK_USED, Topic.SLM_METRICS]
    ok = events[-1].payload
    assert (ok["model"], ok["units_in"], ok["unit"]) == ("tts-good", 11.0, "character")
    assert ok["cost"] == pytest.approx(11 * 0.000015)
    await router.aclose()


async def test_tts_first_audio_deadline(clock: ManualClock) -> None:
    slow, fast = ScriptedTTS("tts-slow", delay_s=5.0), ScriptedTTS("tts-fast")
    entries = [ModelEntry(t.name, Role.SPEECH_SYNTHESIS, "test", (lambda t=t: t)) for t in (slow, fast)]
    entries.append(http_entry("primary", "http://127.0.0.1:9/v1"))
    router = make_router(
        entries,
        ("primary",),
        clock=clock,
        extra={
            Role.SPEECH_SYNTHESIS: ModelProfile(
                Role.SPEECH_SYNTHESIS, "tts-slow", ("tts-fast",), first_output_deadline_s=0.2
            )
        },
    )
    blocks = [pcm async for pcm, _ in router.synthesize("Hi", CTX)]
    assert len(blocks) == 2 and fast.calls == 1
    await router.aclose()


async def test_caller_going_away_is_not_a_failure(fake_chat: FakeChatServer, clock: ManualClock) -> None:
    router = _router(fake_chat, clock)
    sub = router.bus.subscribe({Topic.SLM_METRICS})
    fake_chat.script("primary", Script(tokens=tuple(f" w{i}" for i in range(20))))
    stream = router.stream_chat(Role.DIALOGUE, REQUEST, CTX)
    async for _chunk in stream:
        break  # barge-in: the session stops listening
    await stream.aclose()
    assert [e.payload["outcome"] for e in drain(sub)] == ["cancelled"]
    snap = router.breakers.get("primary").snapshot()
    assert (snap.failures, snap.released) == (0, 1)
    await router.aclose()



FAULTS = {
    "refuses": None,  # nothing listens on the primary's port
    "http_500": Script(status=500),
    "garbage_sse": Script(garbage=b"data: {not json at all\n\ndata: <html>502 Bad Gateway</html>\n\n"),
    "html_body": Script(garbage=b"<html><body>upstream timed out</body></html>"),
    "hangs": Script(hang_s=30.0),  # no headers, no body: the first-output deadline decides
    "silent_stream": Script(first_token_delay_s=30.0),  # headers and a role chunk, then nothing
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_each_kind_of_broken_provider_is_answered_by_the_fallback_and_trips_its_breaker(
    fake_chat: FakeChatServer, clock: ManualClock, fault: str
) -> None:
    """Refused, 500, garbage SSE, an HTML body, a hang before headers, a stream that never speaks: every call
    is still answered (the backup), and after `min_calls` of them the primary's breaker is open and it is no
    longer tried."""
    primary_url = f"http://127.0.0.1:{free_port()}/v1" if FAULTS[fault] is None else fake_chat.base_url
    entries = [http_entry("primary", primary_url), http_entry("backup", fake_chat.base_url)]
    router = make_router(entries, ("primary", "backup"), clock=clock, first_output_s=0.3, stall_s=5.0)
    if FAULTS[fault] is not None:
        fake_chat.script("primary", FAULTS[fault])
    fake_chat.script("backup", Script(tokens=("saved", " by", " the", " backup")))
    sub = router.bus.subscribe({Topic.SLM_METRICS})
    min_calls = router.state.policy.breaker.min_calls
    for i in range(min_calls):
        assert await collect(router, CallContext(conversation_id=f"{fault}-{i}")) == "saved by the backup"
    outcomes = [(e.payload["model"], e.payload["outcome"]) for e in drain(sub)]
    assert outcomes.count(("backup", "ok")) == min_calls
    assert all(outcome in ("error", "timeout") for model, outcome in outcomes if model == "primary")
    assert router.breakers.get("primary").state is BreakerState.OPEN
    tried = len(fake_chat.requests_for("primary"))
    assert await collect(router, CallContext(conversation_id=f"{fault}-after")) == "saved by the backup"
    assert len(fake_chat.requests_for("primary")) == tried  # ejected: not even tried
    await router.aclose()
