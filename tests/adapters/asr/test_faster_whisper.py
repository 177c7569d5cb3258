"""adapters/asr/faster_whisper.py: the adapter on the tiny random-weight model
(fixtures/models/whisper-tiny-random) via the real loader.

The model's text is nonsense; these tests check streaming, timing data, lifecycle, sharing, fairness and failures.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from adapters.asr.base import Transcript
from adapters.asr.faster_whisper import (
    ENV_MODEL,
    FairQueue,
    FasterWhisperConfig,
    FasterWhisperRecognizer,
    WindowedEncoder,
    looped,
    validate_model_dir,
)
from adapters.asr.local_agreement import join_words
from adapters.errors import AdapterError, AdapterUnavailable
from tests.helpers import ROOT, SPEECH

MODEL_DIR = ROOT / "fixtures" / "models" / "whisper-tiny-random"
FRAME = 320  # 20 ms


def speech(name: str = "goforward.wav", seconds: float | None = None) -> np.ndarray:
    pcm, rate = sf.read(SPEECH / name, dtype="int16")
    assert rate == 16000
    return pcm if seconds is None else pcm[: int(seconds * rate)]


def config(**overrides) -> FasterWhisperConfig:
    # random weights believe none of their words: no hallucination filter, or nothing would be left
    values = dict(model_dir=str(MODEL_DIR), max_new_tokens=24, interval_s=0.5, hallucination_probability=0.0)
    values.update(overrides)
    return FasterWhisperConfig(**values)


@pytest.fixture
async def recognizer():
    rec = FasterWhisperRecognizer(config())
    await rec.start()
    yield rec
    await rec.aclose()


async def feed(stream, pcm: np.ndarray, settle_every: int = 25) -> list[Transcript]:
    """Push 20 ms frames; every `settle_every` frames wait for the transcription in flight (deterministic)."""
    partials = []
    for i, start in enumerate(range(0, len(pcm), FRAME)):
        out = await stream.push(pcm[start : start + FRAME])
        if out is not None:
            partials.append(out)
        if (i + 1) % settle_every == 0:
            out = await stream.settle()
            if out is not None:
                partials.append(out)
    return partials


async def test_partials_then_a_final_with_timed_words(recognizer):
    pcm = speech()
    stream = recognizer.stream()
    partials = await feed(stream, pcm, settle_every=1)  # the model is never behind: any push could transcribe
    final = await stream.finish()

    assert partials, "no partial transcript while streaming"
    assert all(not p.is_final and p.text for p in partials)
    # only when the hypothesis changed
    assert all(a.text != b.text for a, b in zip(partials, partials[1:], strict=False))
    assert final.is_final and final.text
    assert final.audio_s == pytest.approx(len(pcm) / 16000)
    assert final.text == " ".join(w.word for w in final.words)
    assert 0.0 < final.confidence <= 1.0
    last_start = 0.0
    for word in final.words:
        assert 0.0 <= word.start_s <= word.end_s <= final.audio_s + 1e-3
        assert word.start_s >= last_start - 1e-3
        last_start = word.start_s
        assert 0.0 <= word.confidence <= 1.0
    # re-transcribed every 500 ms of audio, not on every 20 ms push
    frames = -(-len(pcm) // FRAME)
    assert 2 <= recognizer.metrics().calls <= len(pcm) / 16000 / 0.5 + 1 < frames


async def test_partial_is_confirmed_words_plus_tail(recognizer):
    stream = recognizer.stream()
    partials = await feed(stream, speech())
    last = partials[-1]
    assert last.text == join_words(stream.policy.partial_words())
    confirmed = join_words(stream.policy.confirmed)
    assert last.text.startswith(confirmed)
    final = await stream.finish()
    assert final.text.startswith(confirmed)  # confirmed words never change


async def test_finish_without_audio_and_use_after_finish():
    rec = FasterWhisperRecognizer(config())
    try:
        stream = rec.stream()
        final = await stream.finish()
        assert final == Transcript(text="", is_final=True, words=(), confidence=None, audio_s=0.0)
        with pytest.raises(AdapterError):
            await stream.push(np.zeros(FRAME, np.int16))
        with pytest.raises(AdapterError):
            await stream.finish()
        assert rec.metrics().calls == 0 and rec.model is None  # nothing to transcribe: the model is not even loaded
    finally:
        await rec.aclose()


async def test_no_text_and_no_inference_on_silence(recognizer):
    rng = np.random.default_rng(0)
    quiet = (rng.standard_normal(16000 * 2) * 3).astype(np.int16)  # about -80 dBFS
    stream = recognizer.stream()
    partials = await feed(stream, np.concatenate([np.zeros(16000, np.int16), quiet]))
    final = await stream.finish()
    assert partials == []
    assert final.text == "" and final.words == ()
    metrics = recognizer.metrics()
    assert metrics.calls == 0
    assert metrics.skipped_silent >= 5


async def test_segments_above_the_no_speech_threshold_are_dropped():
    rec = FasterWhisperRecognizer(config(no_speech_threshold=0.0, logprob_threshold=None))  # every segment is no speech
    try:
        stream = rec.stream()
        partials = await feed(stream, speech(seconds=1.6))
        final = await stream.finish()
        assert partials == [] and final.text == ""
        metrics = rec.metrics()
        assert metrics.calls >= 1 and metrics.dropped_no_speech >= 1
    finally:
        await rec.aclose()


def test_a_last_segment_of_words_the_model_barely_believes_is_dropped():
    from adapters.asr.faster_whisper import _Segment

    rec = FasterWhisperRecognizer(config(hallucination_probability=0.15))
    stream = rec.stream()
    spoken = _Segment(0.0, 1.9, 0.02, -0.2, ((" Go", 0.0, 0.4, 0.9), (" forward.", 0.4, 1.9, 0.6)))
    thanks = _Segment(2.0, 2.7, 0.22, -1.5, ((" Thanks.", 2.0, 2.7, 0.05),))
    unsure = _Segment(2.0, 2.7, 0.22, -1.5, ((" ten", 2.0, 2.3, 0.05), (" metres.", 2.3, 2.7, 0.4)))
    assert join_words(stream._hypothesis([spoken, thanks], 0.0, 2.8).words) == "Go forward."
    assert rec.metrics().dropped_hallucinations == 1
    # one word it believes keeps the segment; an only segment is judged the same way
    assert join_words(stream._hypothesis([spoken, unsure], 0.0, 2.8).words) == "Go forward. ten metres."
    assert stream._hypothesis([thanks], 0.0, 2.8).words == ()


def test_likely_no_speech_is_kept_when_it_was_decoded_with_confidence():
    """Whisper's rule: both a high no-speech probability and a low average log-probability drop a segment."""
    from adapters.asr.faster_whisper import _Segment

    stream = FasterWhisperRecognizer(config(no_speech_word_probability=None)).stream()
    five = _Segment(0.0, 1.4, 0.70, -0.78, ((" 5", 0.0, 0.6, 0.3), (" 5.", 0.6, 1.4, 0.3)))
    made_up = _Segment(0.0, 1.4, 0.95, -1.48, ((" I'm", 0.0, 0.6, 0.3), (" going.", 0.6, 1.4, 0.2)))
    assert join_words(stream._hypothesis([five, made_up], 0.0, 2.0).words) == "5 5."
    strict = FasterWhisperRecognizer(config(logprob_threshold=None, no_speech_word_probability=None)).stream()
    assert strict._hypothesis([five, made_up], 0.0, 2.0).words == ()


def test_likely_no_speech_is_kept_when_its_words_are_believed():
    """The same short "five five" with a little less trailing silence: decoded without confidence, but its words
    are believed (text made up from noise averages 0.15-0.35)."""
    from adapters.asr.faster_whisper import _Segment

    five = _Segment(0.0, 1.4, 0.62, -1.18, ((" 5", 0.0, 0.6, 0.65), (" 5.", 0.6, 1.4, 0.62)))
    made_up = _Segment(1.4, 2.0, 0.95, -1.51, ((" I'm", 1.4, 1.6, 0.4), (" going.", 1.6, 2.0, 0.2)))
    stream = FasterWhisperRecognizer(config()).stream()
    assert join_words(stream._hypothesis([five, made_up], 0.0, 2.0).words) == "5 5."
    without = FasterWhisperRecognizer(config(no_speech_word_probability=None)).stream()
    assert without._hypothesis([five, made_up], 0.0, 2.0).words == ()


async def test_buffer_is_trimmed_and_bounded():
    rec = FasterWhisperRecognizer(config(trim_s=2.0, max_buffer_s=3.0))
    seen: list[int] = []
    original = rec._transcribe

    def spy(audio, prompt, language=None):
        seen.append(len(audio))
        return original(audio, prompt, language)

    rec._transcribe = spy
    try:
        pcm = np.concatenate([speech("goforward.wav"), speech("cards-005.wav"), speech("cards-002.wav")])
        stream = rec.stream()
        await feed(stream, pcm)
        await stream.finish()
        assert len(pcm) > 3 * 16000 * 2
        assert max(seen) <= 3.0 * 16000 + 1
        assert stream.policy.buffer_start_s > 0
    finally:
        await rec.aclose()


async def test_three_streams_share_one_model_and_take_turns(monkeypatch):
    import faster_whisper

    constructed = []
    real = faster_whisper.WhisperModel

    class Counting(real):
        def __init__(self, *args, **kwargs):
            constructed.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(faster_whisper, "WhisperModel", Counting)
    rec = FasterWhisperRecognizer(config(num_workers=1))
    order: list[int] = []
    execute = rec._execute

    async def spy(job):
        order.append(job.key)
        await execute(job)

    rec._execute = spy
    try:
        await rec.start()
        streams = [rec.stream() for _ in range(3)]
        clips = [speech("cards-005.wav", 2.0), speech("librivox-0870.wav", 2.0), speech("cards-002.wav", 1.9)]
        await asyncio.gather(*(feed(s, c) for s, c in zip(streams, clips, strict=True)))
        finals = await asyncio.gather(*(s.finish() for s in streams))

        assert len(constructed) == 1 and constructed[0]["local_files_only"] is True
        assert all(s._owner.model is rec.model for s in streams)
        assert all(f.is_final for f in finals)
        keys = [s.key for s in streams]
        assert sorted(set(order)) == sorted(keys)
        # round-robin: while all three are busy, each round of three serves each stream once
        rounds = len(order) // 3
        assert rounds >= 3
        for r in range(rounds):
            assert sorted(order[3 * r : 3 * r + 3]) == sorted(keys), order
        metrics = rec.metrics()
        assert metrics.model_loads == 1
        assert metrics.calls == len(order)
        assert metrics.max_queue_depth >= 2  # three streams on one worker queue up...
        assert metrics.queue_wait_p95_s > 0.0  # ...and waited
        assert metrics.inference_p50_s > 0.0
        assert metrics.queue_depth == 0 and metrics.open_streams == 0
    finally:
        await rec.aclose()


def test_fair_queue_round_robin_with_urgent_first():
    q: FairQueue[str] = FairQueue()
    for item in ("a1", "a2", "a3"):
        q.put_nowait("a", item)
    q.put_nowait("b", "b1")
    q.put_nowait("c", "c1")
    q.put_nowait("b", "b-final", urgent=True)
    assert len(q) == 6
    assert [q.get_nowait() for _ in range(6)] == ["b-final", "a1", "b1", "c1", "a2", "a3"]
    q.put_nowait("x", 1)
    q.put_nowait("y", 2)
    assert q.remove("x") == [1] and len(q) == 1 and q.get_nowait() == 2
    with pytest.raises(IndexError):
        q.get_nowait()


# -- failure paths ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_hub(monkeypatch):
    """Fail loudly if anything tries the Hugging Face hub."""
    import faster_whisper.transcribe
    import tokenizers

    def refuse(*args, **kwargs):
        raise AssertionError("hub access attempted")

    monkeypatch.setattr(faster_whisper.transcribe, "download_model", refuse)
    monkeypatch.setattr(tokenizers.Tokenizer, "from_pretrained", refuse)


def broken_copy(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(MODEL_DIR, target)
    return target


async def test_missing_model_dir_is_unavailable(tmp_path, no_hub):
    rec = FasterWhisperRecognizer(config(model_dir=str(tmp_path / "nope")))
    with pytest.raises(AdapterUnavailable, match="does not exist"):
        await rec.start()
    await rec.aclose()


async def test_missing_tokenizer_is_unavailable_without_hub(tmp_path, no_hub):
    model_dir = broken_copy(tmp_path)
    (model_dir / "tokenizer.json").unlink()
    rec = FasterWhisperRecognizer(config(model_dir=str(model_dir)))
    with pytest.raises(AdapterUnavailable, match="missing tokenizer.json"):
        await rec.start()
    await rec.aclose()


async def test_truncated_model_bin_is_unavailable(tmp_path, no_hub):
    model_dir = broken_copy(tmp_path)
    data = (model_dir / "model.bin").read_bytes()
    (model_dir / "model.bin").write_bytes(data[: len(data) // 3])
    rec = FasterWhisperRecognizer(config(model_dir=str(model_dir)))
    with pytest.raises(AdapterUnavailable, match="could not be loaded"):
        await rec.start()
    await rec.aclose()


async def test_unavailable_model_is_refused_when_a_stream_opens(tmp_path, no_hub):
    """Refused before any audio is pushed, so the router can fall back to the next recogniser."""
    model_dir = broken_copy(tmp_path)
    (model_dir / "preprocessor_config.json").write_text("{not json")
    rec = FasterWhisperRecognizer(config(model_dir=str(model_dir)))
    try:
        with pytest.raises(AdapterUnavailable, match="not valid JSON"):
            rec.stream()  # not started: the directory is checked when the stream opens
    finally:
        await rec.aclose()
    started = FasterWhisperRecognizer(config(model_dir=str(tmp_path / "missing")))
    try:
        with pytest.raises(AdapterUnavailable):
            await started.start()
        with pytest.raises(AdapterUnavailable, match="does not exist"):
            started.stream()  # a failed start is remembered
    finally:
        await started.aclose()


def test_valid_fixture_dir_passes_validation():
    assert validate_model_dir(MODEL_DIR) == MODEL_DIR


def test_config_from_env():
    env = {
        ENV_MODEL: str(MODEL_DIR),
        "SOMAGENT_WHISPER_DEVICE": "cuda",
        "SOMAGENT_WHISPER_COMPUTE_TYPE": "float16",
        "SOMAGENT_WHISPER_BEAM_SIZE": "5",
    }
    cfg = FasterWhisperConfig.from_env(env, num_workers=2)
    assert (cfg.model_dir, cfg.device, cfg.compute_type, cfg.beam_size, cfg.num_workers) == (
        str(MODEL_DIR),
        "cuda",
        "float16",
        5,
        2,
    )
    assert FasterWhisperConfig.from_env({ENV_MODEL: "x"}).compute_type == "int8"
    with pytest.raises(AdapterUnavailable, match=ENV_MODEL):
        FasterWhisperConfig.from_env({})
    with pytest.raises(AdapterUnavailable, match="BEAM_SIZE"):
        FasterWhisperConfig.from_env({ENV_MODEL: "x", "SOMAGENT_WHISPER_BEAM_SIZE": "many"})
    with pytest.raises(AdapterUnavailable, match="configuration"):
        FasterWhisperConfig.from_env({ENV_MODEL: "x", "SOMAGENT_WHISPER_BEAM_SIZE": "0"})


# -- lifecycle -------------------------------------------------------------------------------------------------


def blocking_transcribe(rec: FasterWhisperRecognizer):
    entered, gate = threading.Event(), threading.Event()

    def blocked(audio, prompt, language=None):
        entered.set()
        gate.wait(30)
        return []

    rec._transcribe = blocked
    return entered, gate


async def test_recognizer_aclose_cancels_its_tasks_and_fails_waiters():
    rec = FasterWhisperRecognizer(config(num_workers=1))
    entered, gate = blocking_transcribe(rec)
    try:
        busy = rec.stream()
        await feed(busy, speech(seconds=0.6), settle_every=10**9)
        assert await asyncio.to_thread(entered.wait, 10)
        busy_task = busy._task
        waiting = rec.stream()
        await waiting.push(speech(seconds=0.2))
        finishing = asyncio.create_task(waiting.finish())
        while rec.metrics().queue_depth == 0:
            await asyncio.sleep(0)
        owned = rec.tasks()
        assert len(owned) == 2  # dispatcher and the running transcription

        closing = asyncio.create_task(rec.aclose())
        while not busy_task.done():
            await asyncio.sleep(0.01)
        gate.set()  # let the thread return so the pool can shut down
        await closing

        assert busy_task.cancelled()
        assert all(t.done() for t in owned) and rec.tasks() == []
        with pytest.raises(AdapterError):
            await finishing
        with pytest.raises(AdapterError):
            await busy.push(speech(seconds=0.1))
        with pytest.raises(AdapterError):
            rec.stream()
    finally:
        gate.set()
        await rec.aclose()


async def test_stream_aclose_cancels_its_transcription():
    rec = FasterWhisperRecognizer(config())
    entered, gate = blocking_transcribe(rec)
    try:
        stream = rec.stream()
        await feed(stream, speech(seconds=0.6), settle_every=10**9)
        task = stream._task
        assert task is not None and not task.done()
        await stream.aclose()
        assert task.cancelled() and stream._task is None
        assert rec.metrics().open_streams == 0
        with pytest.raises(AdapterError):
            await stream.push(speech(seconds=0.1))
    finally:
        gate.set()
        await rec.aclose()


# -- encoder window ------------------------------------------------------------------------------------------------


def test_the_encoder_sees_the_audio_plus_a_second_not_the_whole_padded_window():
    seen: list[int] = []
    encode = WindowedEncoder(lambda f: seen.append(f.shape[-1]) or f, min_window_s=10.0)
    rng = np.random.default_rng(0)

    def padded(content_frames: int) -> np.ndarray:
        features = np.zeros((1, 80, 3000), dtype=np.float32)
        features[..., :content_frames] = rng.uniform(-1, 1, (80, content_frames))
        return features

    encode(padded(350))  # 3.5 s of audio: the minimum window
    encode(padded(1450))  # 14.5 s: + 1 s, rounded up to whole seconds
    encode(padded(3000))  # no padding: whole
    encode(np.zeros((80, 3000), dtype=np.float32))  # nothing at all: the minimum
    with encode.whole():
        encode(padded(350))  # Whisper's own window, on this thread only
    encode(padded(350))
    assert seen == [1000, 1600, 3000, 1000, 3000, 1000]


@pytest.mark.parametrize("text", [
    " I would like a cup of tea. I would like a cup of tea.",
    " Thank you very much. Thank you very much. Thank you very mu",
    " 5 5 5 5",
    " Go forward 10 meters." * 12,
])
def test_whispers_loops_are_recognised(text):
    assert looped(text)


@pytest.mark.parametrize("text", [
    "", " Go forward 10 meters.", " five five", " no no no", " The train leaves at noon, the train.",
    " I would like a cup of tea and a cup of coffee.",
])
def test_plain_speech_is_not_taken_for_a_loop(text):
    assert not looped(text)


class _LoopsAtAShortWindow:
    """A stand-in `WhisperModel`: it encodes through the recogniser's window and, as tiny.en does now and then at
    10 s, says its sentence twice unless the encoder saw Whisper's whole 30 s."""

    def __init__(self) -> None:
        self.encode = WindowedEncoder(self._encode, min_window_s=10.0)
        self.frames: list[int] = []

    def _encode(self, features: np.ndarray) -> np.ndarray:
        self.frames.append(features.shape[-1])
        return features

    def transcribe(self, audio, **_kwargs):
        features = np.zeros((1, 80, 3000), dtype=np.float32)
        features[..., : len(audio) // 160] = 1.0
        whole = self.encode(features).shape[-1] == 3000
        said = [" I", " would", " like", " tea."] * (1 if whole else 2)
        words = [SimpleNamespace(word=w, start=0.1 * i, end=0.1 * i + 0.1, probability=0.9) for i, w in enumerate(said)]
        segment = SimpleNamespace(start=0.0, end=0.1 * len(said), no_speech_prob=0.01, avg_logprob=-0.2, words=words)
        return iter([segment]), None


async def test_a_decode_that_loops_at_the_short_window_is_decoded_again_whole():
    rec = FasterWhisperRecognizer(config())
    rec._model = model = _LoopsAtAShortWindow()
    try:
        stream = rec.stream()
        await feed(stream, speech(seconds=1.5), settle_every=1000)
        final = await stream.finish()
        assert final.text == "I would like tea."
        assert model.frames[-2:] == [1000, 3000]  # the short window first, then the whole one
        assert rec.metrics().redecoded_loops >= 1
    finally:
        await rec.aclose()


def test_the_loader_windows_the_encoder_unless_whispers_own_window_is_asked_for():
    from adapters.asr.faster_whisper import load_model

    assert isinstance(load_model(config()).encode, WindowedEncoder)
    assert not isinstance(load_model(config(min_window_s=30.0)).encode, WindowedEncoder)
    with pytest.raises(ValueError, match="min_window_s"):
        config(min_window_s=0.5)
    assert FasterWhisperConfig.from_env({ENV_MODEL: "x", "SOMAGENT_WHISPER_MIN_WINDOW_S": "12"}).min_window_s == 12.0
    with pytest.raises(AdapterUnavailable, match="MIN_WINDOW"):
        FasterWhisperConfig.from_env({ENV_MODEL: "x", "SOMAGENT_WHISPER_MIN_WINDOW_S": "wide"})
