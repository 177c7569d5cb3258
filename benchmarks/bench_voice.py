"""Voice-to-voice latency per stack, replaying the speech fixtures at real time, one turn at a time.

Client-side voice-to-voice: from sending the audio at the server's `audio_end_ms` to the first reply
audio received. Server-side stages come from `somagent.turn.metrics`. Two stacks, each in a server of its own:

- light (`SOMAGENT_STACK=light`: pocketsphinx, the offline responder, espeak-ng): goal p50 <= 400 ms, and the
  work after the end-of-turn decision <= 100 ms p95;
- models (the default of developer-light: Whisper tiny.en, SmolLM2 in its own process, Piper joe): goal p50 <= 700 ms.

`SOMAGENT_BENCH_VOICE_STACKS=light` (or `models`) runs one of them. Replies are prefetched (asked for once the
final transcript is decoded ahead of the endpoint, voice/prefetch.py) as the server does by default;
`SOMAGENT_BENCH_VOICE_PREFETCH=0` asks the sessions not to, for the comparison. `SOMAGENT_BENCH_VOICE_ROUNDS`
(default 2) replays the fixtures that many times: the dialogue model samples, so one round of 9 turns varies by
~+-50 ms at the median.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np

from voice.app import create_app
from voice.capacity import CapacityLimits
from voice.config import ModelSettings, Settings
from voice.replay import replay_file
from voice.serving import running_server

SPEECH = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "speech"
STAGES = ["speech_end_to_end_of_turn_ms", "end_of_turn_to_asr_final_ms", "asr_final_to_first_token_ms",
          "first_token_to_first_audio_ms", "end_of_turn_to_first_audio_ms", "voice_to_voice_ms"]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


GOALS = {"light": 400.0, "models": 700.0}


async def _run(stack: str) -> None:
    files = sorted(SPEECH.glob("*.wav"))
    v2v: list[float] = []
    prefetched = 0
    prefetch = os.environ.get("SOMAGENT_BENCH_VOICE_PREFETCH", "1") != "0"
    # the server's default (None: where the dialogue model costs nothing, as SmolLM2 and the responder do), or off
    session = {"somagent": {"events": True, "prefetch_reply": None if prefetch else False}}
    stages: dict[str, list[float]] = {k: [] for k in STAGES}
    models = ModelSettings.from_env({**os.environ, "SOMAGENT_STACK": stack})
    settings = Settings(capacity=CapacityLimits(measured=False), models=models)
    print(f"stack: {stack}", flush=True)
    rounds = int(os.environ.get("SOMAGENT_BENCH_VOICE_ROUNDS", "2"))
    async with running_server(create_app(settings)) as url:
        for f in files * rounds:
            result = await replay_file(url, f, speed=1.0, session=session)
            for turn in result.turns:
                prefetched += bool((turn.server_metrics or {}).get("reply_prefetched"))
                if turn.voice_to_voice_ms is not None:
                    v2v.append(turn.voice_to_voice_ms)
                for k in STAGES:
                    value = (turn.server_metrics or {}).get(k)
                    if value is not None:
                        stages[k].append(value)
    silence = Settings().default_silence_ms
    print(f"files: {len(files)} x {rounds}, turns measured: {len(v2v)}, silence window: {silence} ms (part of "
          f"voice-to-voice), replies prefetched: {prefetched}" + ("" if prefetch else " (prefetch off)"))
    p50, p95 = _pct(v2v, 50), _pct(v2v, 95)
    goal = GOALS[stack]
    print(f"voice-to-voice (client clock)  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms   goal p50 <= {goal:.0f} ms: "
          f"{'met' if p50 <= goal else 'missed'}")
    for k in STAGES:
        print(f"  server {k:34s} p50 {_pct(stages[k], 50):7.1f} ms  p95 {_pct(stages[k], 95):7.1f} ms")
    if stack == "light":
        eot = stages["end_of_turn_to_first_audio_ms"]
        print(f"work after end-of-turn decision p95 {_pct(eot, 95):.1f} ms   goal <= 100 ms")


def main() -> None:
    stacks = os.environ.get("SOMAGENT_BENCH_VOICE_STACKS", "light,models").split(",")
    for stack in stacks:
        asyncio.run(_run(stack.strip()))


if __name__ == "__main__":
    main()
