"""Voice-to-voice over WebRTC next to the WebSocket figure, replaying the shared speech at real time.

WebRTC: an aiortc caller (not the browser: timing audio inside headless Chromium is impractical) in a network
namespace with the server, since aiortc's ICE offers no loopback candidates. Its figure runs from the moment
the last voiced 20 ms of a clip left the caller's microphone track to the first loud frame of the reply on the
received track, so it includes Opus both ways, the track's 20 ms pacing and the network stack.
WebSocket: voice.replay on loopback, from sending the audio at the server's `audio_end_ms` to the first
reply audio delta received. Both sides also give the server's own `voice_to_voice_ms` (somagent.turn.metrics).
Skips, saying why, where network namespaces are not permitted.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tests.e2e.webrtc.harness import PYTHON, run_result
from tests.e2e.webrtc.netns import NetnsUnavailable, netns_exec, network_namespace
from voice.app import create_app
from voice.capacity import CapacityLimits
from voice.config import Settings
from voice.replay import replay_file
from voice.serving import running_server

SPEECH = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "speech"
FILES = ["goforward.wav", "cards-001.wav", "cards-002.wav", "cards-003.wav", "cards-004.wav"]
ROUNDS = 2


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def _line(label: str, values: list[float]) -> str:
    return f"  {label:44s} n={len(values):2d}  p50 {_pct(values, 50):7.1f} ms  p95 {_pct(values, 95):7.1f} ms"


@contextmanager
def _own_router_database():
    """The benchmark's servers keep router state in a throwaway database, not ./data."""
    old = os.environ.get("SOMAGENT_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="sgv-bench-") as tmp:
        os.environ["SOMAGENT_DATABASE_URL"] = f"sqlite:///{tmp}/router.db"
        try:
            yield os.environ["SOMAGENT_DATABASE_URL"]
        finally:
            if old is None:
                os.environ.pop("SOMAGENT_DATABASE_URL", None)
            else:
                os.environ["SOMAGENT_DATABASE_URL"] = old


async def _websocket() -> tuple[list[float], list[float]]:
    client, server = [], []
    async with running_server(create_app(Settings(capacity=CapacityLimits(measured=False)))) as url:
        for _ in range(ROUNDS):
            for name in FILES:
                result = await replay_file(url, SPEECH / name, speed=1.0)
                for turn in result.turns:
                    if turn.voice_to_voice_ms is not None:
                        client.append(turn.voice_to_voice_ms)
                    value = (turn.server_metrics or {}).get("voice_to_voice_ms")
                    if value is not None:
                        server.append(value)
    return client, server


def main() -> None:
    with _own_router_database() as db:
        try:
            with network_namespace("sgvb") as (ns, address):
                rtc = run_result(netns_exec(ns) + [PYTHON, "-m", "tests.e2e.webrtc.run_client", "--host", address,
                                                   "--scenarios", "bench", "--files", ",".join(FILES * ROUNDS),
                                                   "--timeout", "150"],
                                 timeout=200, env={"SOMAGENT_DATABASE_URL": db})
        except NetnsUnavailable as exc:
            print(f"bench_webrtc skipped: WebRTC needs a network namespace here and {exc}")
            return
        if "error" in rtc.get("bench", {}):
            raise RuntimeError(f"the WebRTC caller failed: {rtc['bench']['error']}")
        turns = rtc["bench"]["turns"]
        rtc_client = [t["client_v2v_ms"] for t in turns if t["client_v2v_ms"] is not None]
        rtc_server = [t["server_v2v_ms"] for t in turns if t["server_v2v_ms"] is not None]
        rtc_end = [t["client_v2v_from_audio_end_ms"] for t in turns if t["client_v2v_from_audio_end_ms"] is not None]
        ws_client, ws_server = asyncio.run(_websocket())
    print(f"files: {', '.join(FILES)} x {ROUNDS}, real time, silence window {Settings().default_silence_ms} ms "
          "(part of voice-to-voice)")
    print("WebRTC (aiortc caller in a network namespace; -> first loud reply frame off the received track)")
    print(_line("voice-to-voice, caller, from last voiced frame", rtc_client))
    print(_line("voice-to-voice, caller, from audio_end_ms", rtc_end))
    print(_line("voice-to-voice, server (somagent.turn.metrics)", rtc_server))
    print("WebSocket (voice.replay on loopback; audio at audio_end_ms sent -> first audio delta received)")
    print(_line("voice-to-voice, client's clock", ws_client))
    print(_line("voice-to-voice, server (somagent.turn.metrics)", ws_server))
    missing = len(turns) - len(rtc_client)
    if missing:
        print(f"  ({missing} WebRTC turns had no measurable reply)")


if __name__ == "__main__":
    main()
