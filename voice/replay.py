"""Replay audio files into a Realtime server as a live client would, and report the turns.

Voice-to-voice is measured on the client's clock: from the moment the audio at the server's
`audio_end_ms` was sent to the moment the first reply audio arrived.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import csv
import functools
import json
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapters.aio import cancel_and_wait
from voice.client import AudioFileError, RealtimeClient, load_audio

EventSink = Callable[[str, dict[str, Any]], None]


@dataclass
class TurnResult:
    item_id: str | None = None
    user_transcript: str | None = None
    assistant_transcript: str | None = None
    assistant_audio_ms: float = 0.0
    voice_to_voice_ms: float | None = None
    response_status: str | None = None
    server_metrics: dict[str, Any] | None = None
    speech_end_at: float | None = field(default=None, repr=False)


@dataclass
class FileResult:
    file: str
    error: str | None = None
    turns: list[TurnResult] = field(default_factory=list)
    session_errors: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        turns = []
        for t in self.turns:
            d = asdict(t)
            d.pop("speech_end_at")
            turns.append(d)
        return {"file": self.file, "error": self.error, "turns": turns, "session_errors": self.session_errors}

    @property
    def hypothesis(self) -> str:
        """What the server heard in the whole file: its turns' user transcripts, in order."""
        return " ".join(text for t in self.turns if (text := (t.user_transcript or "").strip()))


# -- word error rate against reference transcripts ---------------------------------------------------------------


class TranscriptFileError(ValueError):
    """A transcript file that cannot be read or is not `file<TAB>transcript` with a header row."""


def read_transcripts(path: str | Path) -> dict[str, str]:
    """File name -> reference text from a TSV with a header naming `file` and `transcript` columns (others, such
    as `source`, are ignored): the format of fixtures/audio/speech/transcripts.tsv."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError) as exc:
        raise TranscriptFileError(f"cannot read transcripts {str(path)!r}: {exc}") from exc
    if not rows or "file" not in rows[0] or "transcript" not in rows[0]:
        raise TranscriptFileError(f"transcripts {str(path)!r}: the first line must be a tab-separated header "
                                  "naming the columns 'file' and 'transcript'")
    col_file, col_text = rows[0].index("file"), rows[0].index("transcript")
    refs: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(col_file, col_text) or not row[col_file].strip():
            raise TranscriptFileError(f"transcripts {str(path)!r} line {line}: expected a file name and its "
                                      f"transcript separated by tabs, got {row!r}")
        name = row[col_file].strip()
        if name in refs and refs[name] != row[col_text].strip():
            raise TranscriptFileError(f"transcripts {str(path)!r} line {line}: {name!r} has two transcripts")
        refs[name] = row[col_text].strip()
    return refs


def reference_for(references: Mapping[str, str], file: str) -> str | None:
    """A replayed file's reference: by the path as given, else by its file name (how transcripts.tsv names them)."""
    found = references.get(file)
    return found if found is not None else references.get(Path(file).name)


def require_scoring() -> None:
    """Import what `word_errors` needs now (jiwer, whisper-normalizer: the dev extras), so a missing one is
    reported before any audio is replayed; ImportError names it."""
    import jiwer  # noqa: F401

    _normaliser()


@functools.cache
def _normaliser() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalise(text: str) -> str:
    """Whisper's English normaliser (case, punctuation, numerals as digits, British spellings as American), so a
    recogniser is not charged for writing "10" where the reference says "ten"."""
    return _normaliser()(text)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) after normalising both; summed over files they give the corpus WER."""
    import jiwer

    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    if not ref or not hyp:  # all insertions or all deletions (some jiwer versions refuse empty strings)
        return len(ref) or len(hyp), len(ref)
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return out.substitutions + out.deletions + out.insertions, len(ref)


def _rate(errors: int, words: int) -> float | None:
    return round(errors / words, 4) if words else None


def summary(results: list[FileResult], references: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The replay's last line. With `references`, each file also gets its `reference`, `hypothesis` and `wer`
    (None without a reference, or when it could not be replayed) and the line the corpus `wer` over those files."""
    files = [r.summary() for r in results]
    if references is None:
        return {"type": "summary", "files": files}
    total_errors = total_words = 0
    for result, entry in zip(results, files, strict=True):
        reference = reference_for(references, result.file)
        entry.update(reference=reference, hypothesis=result.hypothesis, wer=None)
        if reference is None or result.error:
            continue
        errors, words = word_errors(reference, result.hypothesis)
        entry["wer"] = _rate(errors, words)
        total_errors += errors
        total_words += words
    return {"type": "summary", "files": files, "wer": _rate(total_errors, total_words)}


class _Tracker:
    """Follows one session's events and builds its turns."""

    def __init__(self, rate: int, sink: EventSink | None, name: str) -> None:
        self.rate = rate
        self.sink = sink
        self.name = name
        self.sent_ms: list[float] = []
        self.sent_at: list[float] = []
        self.turns: list[TurnResult] = []
        self.by_item: dict[str, TurnResult] = {}
        self.by_response: dict[str, TurnResult] = {}
        self.first_audio: set[str] = set()
        self.errors: list[dict[str, Any]] = []
        self.speaking = False
        self.pending_transcripts = 0
        self.open_responses = 0
        self.last_speech_end: float | None = None
        self.changed = asyncio.Event()

    def on_chunk(self, audio_ms: float) -> None:
        self.sent_ms.append(audio_ms)
        self.sent_at.append(time.perf_counter())

    def _sent_time(self, audio_ms: float) -> float | None:
        i = bisect.bisect_left(self.sent_ms, audio_ms)
        return self.sent_at[i] if i < len(self.sent_at) else None

    @property
    def idle(self) -> bool:
        return not self.speaking and self.pending_transcripts == 0 and self.open_responses == 0

    def on_event(self, ev: dict[str, Any]) -> None:
        now = time.perf_counter()
        kind = ev.get("type", "")
        if kind == "input_audio_buffer.speech_started":
            self.speaking = True
        elif kind == "input_audio_buffer.speech_stopped":
            self.speaking = False
            self.last_speech_end = self._sent_time(ev["audio_end_ms"])
        elif kind == "input_audio_buffer.committed":
            turn = TurnResult(item_id=ev["item_id"], speech_end_at=self.last_speech_end)
            self.turns.append(turn)
            self.by_item[ev["item_id"]] = turn
            self.pending_transcripts += 1
        elif kind in ("conversation.item.input_audio_transcription.completed",
                      "conversation.item.input_audio_transcription.failed"):
            turn = self.by_item.get(ev["item_id"])
            if turn is not None:
                turn.user_transcript = ev.get("transcript", "")
            self.pending_transcripts = max(0, self.pending_transcripts - 1)
        elif kind == "response.created":
            self.open_responses += 1
            owner = next((t for t in reversed(self.turns) if t.response_status is None
                          and t not in self.by_response.values()), None)
            if owner is None:
                owner = TurnResult()
                self.turns.append(owner)
            self.by_response[ev["response"]["id"]] = owner
        elif kind == "response.output_audio.delta":
            turn = self.by_response.get(ev["response_id"])
            if turn is not None:
                if ev["response_id"] not in self.first_audio:
                    self.first_audio.add(ev["response_id"])
                    if turn.speech_end_at is not None:
                        turn.voice_to_voice_ms = round((now - turn.speech_end_at) * 1000.0, 1)
                turn.assistant_audio_ms += len(base64.b64decode(ev["delta"])) / 2 / self.rate * 1000.0
        elif kind in ("response.output_audio_transcript.done", "response.output_text.done"):
            turn = self.by_response.get(ev["response_id"])
            if turn is not None:
                turn.assistant_transcript = ev.get("transcript", ev.get("text"))
        elif kind == "response.done":
            self.open_responses = max(0, self.open_responses - 1)
            turn = self.by_response.get(ev["response"]["id"])
            if turn is not None:
                turn.response_status = ev["response"]["status"]
        elif kind == "somagent.turn.metrics":
            turn = self.by_item.get(ev.get("item_id"))
            if turn is not None:
                turn.server_metrics = {k: v for k, v in ev.items() if k not in ("type", "event_id")}
        elif kind == "error":
            self.errors.append(ev["error"])
        if self.sink is not None:
            self.sink(self.name, ev)
        self.changed.set()


async def replay_file(url: str, path: str | Path, *, speed: float = 1.0, api_key: str | None = None,
                      sink: EventSink | None = None, trailing_silence_s: float = 1.2,
                      session: dict[str, Any] | None = None, timeout_s: float = 60.0) -> FileResult:
    name = str(path)
    try:
        pcm, rate = load_audio(path)
    except AudioFileError as exc:
        return FileResult(file=name, error=str(exc))
    client = RealtimeClient(url, api_key=api_key)
    tracker = _Tracker(client.rate, sink, name)
    try:
        async with client:
            first = await client.recv(timeout=30)
            if first.get("type") != "session.created":
                return FileResult(file=name, error=f"server refused the session: {first.get('error', first)}")
            await client.update_session(**{"somagent": {"events": True}, **(session or {})})
            reader = asyncio.create_task(_read(client, tracker), name=f"replay-reader-{name}")
            try:
                await client.stream_audio(pcm, rate, speed=speed, on_chunk=tracker.on_chunk)
                silence = np.zeros(int(rate * trailing_silence_s), dtype=np.int16)
                sent = tracker.sent_ms[-1] if tracker.sent_ms else 0.0
                await client.stream_audio(silence, rate, speed=speed,
                                          on_chunk=lambda ms: tracker.on_chunk(sent + ms))
                await _wait_idle(tracker, timeout_s)
            finally:
                await cancel_and_wait(reader)
    except (OSError, asyncio.TimeoutError) as exc:
        return FileResult(file=name, error=f"connection failed: {exc!r}", turns=tracker.turns)
    return FileResult(file=name, turns=tracker.turns, session_errors=tracker.errors)


async def _read(client: RealtimeClient, tracker: _Tracker) -> None:
    async for ev in client.events():
        tracker.on_event(ev)


async def _wait_idle(tracker: _Tracker, timeout_s: float) -> None:
    """Bounded wait until no speech, transcription or response is in flight (stable for 300 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if tracker.idle:
            tracker.changed.clear()
            try:
                await asyncio.wait_for(tracker.changed.wait(), 0.3)
            except asyncio.TimeoutError:
                return
        else:
            tracker.changed.clear()
            try:
                await asyncio.wait_for(tracker.changed.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return


async def replay(files: list[str], *, url: str | None = None, speed: float = 1.0, api_key: str | None = None,
                 sink: EventSink | None = None, session: dict[str, Any] | None = None,
                 router: Any = None) -> list[FileResult]:
    """Replay files one after another; without `url` an in-process server on a free loopback port serves them
    (with `router` when given, else the default one)."""
    async with AsyncExitStack() as stack:
        if url is None:
            from voice.app import create_app
            from voice.capacity import CapacityLimits
            from voice.config import Settings
            from voice.serving import running_server

            # the replay client shares this server's loop: its load is ours, so only the session cap applies
            settings = Settings(capacity=CapacityLimits(measured=False))
            url = await stack.enter_async_context(running_server(create_app(settings, router=router)))
        return [await replay_file(url, f, speed=speed, api_key=api_key, sink=sink, session=session) for f in files]


def compact(ev: dict[str, Any]) -> dict[str, Any]:
    """An event fit for printing: audio payloads replaced by their size."""
    if ev.get("type") == "response.output_audio.delta":
        return {k: v for k, v in ev.items() if k != "delta"} | {"delta_bytes": len(base64.b64decode(ev["delta"]))}
    return ev


def print_event(as_json: bool) -> EventSink:
    def sink(name: str, ev: dict[str, Any]) -> None:
        kind = ev.get("type", "")
        if as_json:
            print(json.dumps({"file": name, **compact(ev)}), flush=True)
        elif kind == "conversation.item.input_audio_transcription.completed":
            print(f"[{Path(name).name}] user:  {ev['transcript']}", flush=True)
        elif kind == "response.output_audio_transcript.done":
            print(f"[{Path(name).name}] agent: {ev['transcript']}", flush=True)
        elif kind == "somagent.turn.metrics":
            print(f"[{Path(name).name}] voice-to-voice {ev.get('voice_to_voice_ms')} ms "
                  f"(end of turn -> audio {ev.get('end_of_turn_to_first_audio_ms')} ms)", flush=True)
        elif kind == "error":
            print(f"[{Path(name).name}] error: {ev['error'].get('message')}", flush=True)
    return sink
