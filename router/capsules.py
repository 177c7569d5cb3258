"""Benchmark capsules: versioned inputs with expected outputs per task kind, run through each model's own adapter,
and the quality they measure put into the router's scores in place of the catalogue's priors.

This first kind is audio transcription: a capsule names recordings and their transcripts (a JSON file:
`{"name", "version", "kind": "transcription", "items": [{"audio": path, "transcript": text}]}`, paths relative to
the file; `fixtures/capsules/transcription-en.json` ships the nine speech fixtures). Each model of the
speech_recognition role hears every recording through its adapter, one utterance a recording, and its quality is
1 - WER over the capsule (jiwer on Whisper's English normaliser, so "ten" and "10", "meters" and "metres" count
alike), clamped to 0..1. `apply` records the result (`RoutingState.measured_quality`) and re-scores the role, so
selection and `model.profile.scored` use it from then on. A run records what makes it reproducible: the capsule's
name and version, the models, the mode.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import soundfile as sf
from whisper_normalizer.english import EnglishTextNormalizer

from adapters.asr.base import SAMPLE_RATE
from dsp import resample
from router.roles import Role

PUSH_SAMPLES = SAMPLE_RATE // 5  # 200 ms pushes, as a live stream arrives
_normalise = EnglishTextNormalizer()


@dataclass(frozen=True)
class CapsuleItem:
    audio: Path
    transcript: str


@dataclass(frozen=True)
class Capsule:
    name: str
    version: str
    kind: str
    items: tuple[CapsuleItem, ...]

    @classmethod
    def load(cls, path: str | Path) -> Capsule:
        path = Path(path)
        data = json.loads(path.read_text())
        if data.get("kind") != "transcription":
            raise ValueError(f"{path}: only transcription capsules are run so far, not {data.get('kind')!r}")
        items = tuple(CapsuleItem((path.parent / i["audio"]).resolve(), str(i["transcript"])) for i in data["items"])
        if not items:
            raise ValueError(f"{path}: a capsule needs at least one item")
        return cls(str(data["name"]), str(data["version"]), "transcription", items)


@dataclass
class ModelResult:
    model: str
    wer: float
    quality: float
    latency_ms: list[float] = field(default_factory=list)  # end of audio to final transcript, per item
    hypotheses: list[str] = field(default_factory=list)


@dataclass
class CapsuleRun:
    capsule: str
    version: str
    role: Role
    mode: str
    started_at: float
    results: dict[str, ModelResult]

    def to_dict(self) -> dict[str, Any]:
        return {"capsule": self.capsule, "version": self.version, "role": self.role.value, "mode": self.mode,
                "started_at": self.started_at,
                "results": {m: {"wer": round(r.wer, 4), "quality": round(r.quality, 4),
                                "latency_p50_ms": round(float(np.median(r.latency_ms)), 1) if r.latency_ms else None}
                            for m, r in self.results.items()}}


def _audio(path: Path) -> np.ndarray:
    pcm, rate = sf.read(path, dtype="int16", always_2d=True)
    mono = pcm[:, 0]
    return mono if rate == SAMPLE_RATE else resample(mono, rate, SAMPLE_RATE)


async def run_transcription(router: Any, capsule: Capsule, models: list[str] | None = None) -> CapsuleRun:
    """Every model (default: the role's candidates in this mode) over every item, through its own adapter."""
    role = Role.SPEECH_RECOGNITION
    names = models or [m for m in router.state.profile(role).candidates]
    run = CapsuleRun(capsule.name, capsule.version, role, router.state.mode.value, time.time(), {})
    for name in names:
        adapter = router.catalog.adapter(name)
        await adapter.start()
        hyps, latencies = [], []
        for item in capsule.items:
            pcm = _audio(item.audio)
            stream = adapter.stream()
            try:
                for i in range(0, len(pcm), PUSH_SAMPLES):
                    await stream.push(pcm[i:i + PUSH_SAMPLES], partial=False)
                began = time.perf_counter()
                final = await stream.finish()
                latencies.append((time.perf_counter() - began) * 1000.0)
            finally:
                await stream.aclose()
            hyps.append(final.text)
        refs = [_normalise(i.transcript) for i in capsule.items]
        wer = float(jiwer.wer(refs, [_normalise(h) for h in hyps]))
        run.results[name] = ModelResult(name, wer, min(1.0, max(0.0, 1.0 - wer)), latencies, hyps)
    return run


def apply(router: Any, run: CapsuleRun) -> None:
    """The run's qualities into the router's scores (the role re-scored, and announced)."""
    for name, result in run.results.items():
        router.state.measured_quality[(run.role, name)] = result.quality
    router.rescore(run.role)
