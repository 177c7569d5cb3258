"""Streaming ASR cost: faster-whisper (LocalAgreement-2 adapter) vs pocketsphinx, on fixtures/audio/speech/*.wav.

Both get the audio in 20 ms chunks, as a session pushes it.
- faster-whisper: `FasterWhisperRecognizer` on `--model` (default: the tiny random-weight fixture model, whose text
  is nonsense; set SOMAGENT_WHISPER_MODEL or pass --model for a real one), one worker. Live, a stream re-transcribes
  every 500 ms of new audio while the model keeps up; here each stream waits (`settle()`) for the transcription it
  started before pushing on, which gives the same transcriptions deterministically and without waiting real time.
  RTF = inference seconds spent on the stream / audio seconds. Latency = `finish()` after the last push.
  A second run pushes three files at once on the one worker: the queue shows in `metrics()`.
- pocketsphinx: the adapter the server runs (`PocketsphinxRecognizer`, decoding in one worker process), pushed
  20 ms chunks one after another. RTF = seconds spent pushing and finishing / audio seconds (round trips to the
  worker included); latency = `finish()` after the last push.
WER (jiwer) against transcripts.tsv is printed for both when jiwer is installed.

    .venv/bin/python -m benchmarks asr
    .venv/bin/python -m benchmarks.bench_asr --model /path/to/faster-whisper-small.en --compute-type int8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from adapters.asr.faster_whisper import ENV_MODEL, FasterWhisperConfig, FasterWhisperRecognizer, bundled_model_dir

ROOT = Path(__file__).resolve().parent.parent

SPEECH = ROOT / "fixtures" / "audio" / "speech"
TINY = ROOT / "fixtures" / "models" / "whisper-tiny-random"
RATE = 16000
CHUNK = 320


def _files() -> list[tuple[str, np.ndarray, str]]:
    refs = {}
    for line in (SPEECH / "transcripts.tsv").read_text().splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 2:
            refs[parts[0]] = parts[1]
    out = []
    for path in sorted(SPEECH.glob("*.wav")):
        pcm, rate = sf.read(path, dtype="int16")
        assert rate == RATE, path
        out.append((path.name, pcm, refs.get(path.name, "")))
    return out


def _wer(refs: list[str], hyps: list[str]) -> str:
    try:
        import jiwer
    except ImportError:
        return "n/a (jiwer not installed)"
    pairs = [(r.lower(), h.lower()) for r, h in zip(refs, hyps, strict=True) if r]
    norm = jiwer.Compose([jiwer.RemovePunctuation(), jiwer.ToLowerCase(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])
    rs = [norm(r) for r, _ in pairs]
    hs = [norm(h) or "<empty>" for _, h in pairs]
    return f"{jiwer.wer(rs, hs):.1%}"


async def _whisper_stream(rec: FasterWhisperRecognizer, pcm: np.ndarray) -> tuple[str, float, int]:
    stream = rec.stream()
    pushes_per_settle = int(rec.config.interval_s * RATE) // CHUNK
    for i, start in enumerate(range(0, len(pcm), CHUNK)):
        await stream.push(pcm[start : start + CHUNK])
        if (i + 1) % pushes_per_settle == 0:
            await stream.settle()
    started = time.perf_counter()
    final = await stream.finish()
    return final.text, time.perf_counter() - started, stream.transcriptions


async def _bench_whisper(cfg: FasterWhisperConfig, files) -> list[str]:
    rec = FasterWhisperRecognizer(cfg)
    t0 = time.perf_counter()
    await rec.start()
    print(f"faster-whisper model {cfg.model_dir} ({cfg.compute_type}, beam {cfg.beam_size}) "
          f"loaded in {time.perf_counter() - t0:.2f} s")
    # warm-up
    await _whisper_stream(rec, files[0][1][: RATE])
    texts, lat, audio_s, infer_s = [], [], 0.0, 0.0
    print(f"{'file':20s} {'audio s':>8s} {'calls':>6s} {'RTF':>7s} {'final ms':>9s}")
    for name, pcm, _ in files:
        before = rec.metrics().inference_total_s
        text, latency, calls = await _whisper_stream(rec, pcm)
        spent = rec.metrics().inference_total_s - before
        dur = len(pcm) / RATE
        texts.append(text)
        lat.append(latency)
        audio_s += dur
        infer_s += spent
        print(f"{name:20s} {dur:8.2f} {calls:6d} {spent / dur:7.3f} {latency * 1000:9.1f}")
    m = rec.metrics()
    print(f"faster-whisper: RTF {infer_s / audio_s:.3f} (inference s / audio s), finish latency p50 "
          f"{np.percentile(lat, 50) * 1000:.0f} ms p95 {np.percentile(lat, 95) * 1000:.0f} ms; "
          f"inference p50 {m.inference_p50_s * 1000:.0f} ms p95 {m.inference_p95_s * 1000:.0f} ms")

    await rec.aclose()

    # three at once on the same worker pool, fresh recogniser for clean metrics
    rec = FasterWhisperRecognizer(cfg)
    await rec.start()
    picks = [f[1] for f in files[-3:]]
    before = 0
    t1 = time.perf_counter()
    results = await asyncio.gather(*(_whisper_stream(rec, pcm) for pcm in picks))
    wall = time.perf_counter() - t1
    m = rec.metrics()
    print(f"3 concurrent streams, {cfg.num_workers} worker(s): {m.calls - before} calls in {wall:.2f} s; "
          f"max queue depth {m.max_queue_depth}; queue wait p50 {m.queue_wait_p50_s * 1000:.0f} ms "
          f"p95 {m.queue_wait_p95_s * 1000:.0f} ms; finish latency "
          f"{', '.join(f'{r[1] * 1000:.0f}' for r in results)} ms")
    await rec.aclose()
    return texts


async def _bench_pocketsphinx(files) -> list[str]:
    from adapters.asr.pocketsphinx import PocketsphinxConfig, PocketsphinxRecognizer

    t0 = time.perf_counter()
    rec = PocketsphinxRecognizer(PocketsphinxConfig(workers=1))
    await rec.start()
    print(f"pocketsphinx worker process and decoders ready in {time.perf_counter() - t0:.2f} s")
    texts, lat, audio_s, spent_s = [], [], 0.0, 0.0
    print(f"{'file':20s} {'audio s':>8s} {'RTF':>7s} {'final ms':>9s}")
    for name, pcm, _ in files:
        stream = rec.stream()
        t = time.perf_counter()
        for start in range(0, len(pcm), CHUNK):
            await stream.push(pcm[start : start + CHUNK])
        spent = time.perf_counter() - t
        t = time.perf_counter()
        final = await stream.finish()
        latency = time.perf_counter() - t
        spent += latency
        dur = len(pcm) / RATE
        texts.append(final.text)
        lat.append(latency)
        audio_s += dur
        spent_s += spent
        print(f"{name:20s} {dur:8.2f} {spent / dur:7.3f} {latency * 1000:9.1f}")
    await rec.aclose()
    print(f"pocketsphinx: RTF {spent_s / audio_s:.3f}, finish latency p50 {np.percentile(lat, 50) * 1000:.0f} ms "
          f"p95 {np.percentile(lat, 95) * 1000:.0f} ms")
    return texts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="faster-whisper vs pocketsphinx streaming cost")
    # the real tiny.en where it is installed: the random-weight fixture believes none of its words, so the
    # recogniser's hallucination filter leaves it no text to time
    parser.add_argument("--model", default=os.environ.get(ENV_MODEL) or str(bundled_model_dir() or TINY))
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args([] if argv is None else argv)
    files = _files()
    cfg = FasterWhisperConfig(
        model_dir=args.model, compute_type=args.compute_type, beam_size=args.beam_size, num_workers=args.workers
    )
    print(f"{len(files)} files, {sum(len(f[1]) for f in files) / RATE:.1f} s of speech, 20 ms chunks, "
          f"{os.cpu_count()} CPUs\n")
    whisper_texts = asyncio.run(_bench_whisper(cfg, files))
    print()
    ps_texts = asyncio.run(_bench_pocketsphinx(files))
    refs = [f[2] for f in files]
    print(f"\nWER: faster-whisper {_wer(refs, whisper_texts)} "
          f"({'random-weight fixture: nonsense by design' if Path(args.model) == TINY else args.model}), "
          f"pocketsphinx {_wer(refs, ps_texts)}")


if __name__ == "__main__":
    main(sys.argv[1:])
