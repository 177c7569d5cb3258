"""Capsule benchmark: every shipped capsule over the local stack's models (SmolLM2 and the offline responder,
Whisper tiny.en and pocketsphinx, Piper and espeak-ng), through the real runner, as `somagent-voice capsules run`
does; the table is each model's measured quality, its metrics and latency, and how long the runs took.

Run: .venv/bin/python -m benchmarks capsules
"""

from __future__ import annotations

import asyncio
import time

from router.capsules import Benchmarks, BenchmarkSettings
from router.capsules.capsule import shipped_dir
from router.defaults import LocalModels, build_default_router
from router.roles import Role

SHOWN = ("wer", "cer", "factual_match", "refusal_accuracy", "chrf", "rougeL", "unit_test_pass_rate", "ovrl_mos",
         "mos_lqo", "latency_p50_ms", "latency_p95_ms")


async def run() -> None:
    router = build_default_router(database_url=None, mode="test", local=LocalModels.from_env({}))
    await router.start(warm_speech=False)
    benchmarks = Benchmarks(router, BenchmarkSettings(shipped_dir(), None))
    try:
        await benchmarks.start(schedule=False)
        for role in (Role.SPEECH_RECOGNITION, Role.SPEECH_SYNTHESIS, Role.DIALOGUE, Role.CODE):
            began = time.perf_counter()
            for report in await benchmarks.run_role(role):
                print(f"\n{report.run.capsule}@{report.run.version} ({role.value}): "
                      f"{time.perf_counter() - began:.1f} s for {len(report.summaries)} models")
                for name, s in sorted(report.summaries.items(), key=lambda kv: -kv[1].quality):
                    figures = ", ".join(f"{k} {s.metrics[k]:.3g}" for k in SHOWN if k in s.metrics)
                    print(f"  {name:24} quality {s.quality:.3f}  {figures}")
    finally:
        await benchmarks.aclose()
        await router.aclose()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
