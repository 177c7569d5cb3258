"""Voice-to-voice latency of the embedded pipeline, replaying the shared speech at real time.

Client-side voice-to-voice: from sending the audio at the server's `audio_end_ms` to the first reply
audio received. Server-side stages come from `somagent.turn.metrics`. Goals (issue 2): voice-to-voice
p50 <= 400 ms with the embedded parts; work after the end-of-turn decision <= 100 ms p95.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from voice.app import create_app
from voice.capacity import CapacityLimits
from voice.config import Settings
from voice.replay import replay_file
from voice.serving import running_server

SPEECH = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "speech"
STAGES = ["speech_end_to_end_of_turn_ms", "end_of_turn_to_asr_final_ms", "asr_final_to_first_token_ms",
          "first_token_to_first_audio_ms", "end_of_turn_to_first_audio_ms", "voice_to_voice_ms"]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


async def _run() -> None:
    files = sorted(SPEECH.glob("*.wav"))
    v2v: list[float] = []
    stages: dict[str, list[float]] = {k: [] for k in STAGES}
    async with running_server(create_app(Settings(capacity=CapacityLimits(measured=False)))) as url:
        for f in files:
            result = await replay_file(url, f, speed=1.0)
            for turn in result.turns:
                if turn.voice_to_voice_ms is not None:
                    v2v.append(turn.voice_to_voice_ms)
                for k in STAGES:
                    value = (turn.server_metrics or {}).get(k)
                    if value is not None:
                        stages[k].append(value)
    silence = Settings().default_silence_ms
    print(f"files: {len(files)}, turns measured: {len(v2v)}, silence window: {silence} ms (part of voice-to-voice)")
    p50, p95 = _pct(v2v, 50), _pct(v2v, 95)
    print(f"voice-to-voice (client clock)  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms   goal p50 <= 400 ms")
    for k in STAGES:
        print(f"  server {k:34s} p50 {_pct(stages[k], 50):7.1f} ms  p95 {_pct(stages[k], 95):7.1f} ms")
    eot = stages["end_of_turn_to_first_audio_ms"]
    print(f"work after end-of-turn decision p95 {_pct(eot, 95):.1f} ms   goal <= 100 ms")


def main() -> None:
    asyncio.run(_run())


if __name__ == "__main__":
    main()
