"""The pieces of the loop on their own: endpointer, sentence cutting, session merging, embedded parts."""

from datetime import datetime, timezone

import numpy as np
import pytest

from adapters.asr.pocketsphinx import PocketsphinxRecognizer
from adapters.llm.base import ChatMessage, ChatRequest
from adapters.llm.embedded import EmbeddedResponder
from adapters.tts.espeak import EspeakSynthesizer
from dsp import FRAME_SAMPLES
from tests.helpers import speech
from voice.endpointer import Endpointer, SpeechStarted, SpeechStopped
from voice.sentences import SentenceSplitter
from voice.session_config import SessionConfig, merge

SILENT = np.zeros(FRAME_SAMPLES, np.int16)


def _run(ep, pattern):
    return [(i, ev) for i, voiced in enumerate(pattern) if (ev := ep.push(SILENT, voiced)) is not None]


def test_endpointer_start_stop_and_padding():
    ep = Endpointer(prefix_padding_ms=100, silence_duration_ms=200)
    pattern = [False] * 20 + [True] * 10 + [False] * 15
    events = _run(ep, pattern)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechStopped]
    (i_start, start), (i_stop, stop) = events
    assert i_start == 22  # after three voiced frames
    assert start.audio_start_ms == 20 * 20 - 100  # onset minus the padding
    assert len(start.prefix) == 5 + 3  # padding frames plus the onset frames
    assert stop.audio_end_ms == 30 * 20  # end of the last voiced frame
    assert i_stop == 29 + 10  # ten silent frames make 200 ms


def test_endpointer_ignores_blips_and_short_pauses():
    ep = Endpointer(prefix_padding_ms=300, silence_duration_ms=300)
    assert _run(ep, [True, True, False] * 5) == []  # never three voiced frames in a row
    events = _run(ep, [True] * 5 + [False] * 10 + [True] * 5 + [False] * 16)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechStopped]  # a 200 ms pause is not a turn end


def test_sentence_splitter_cuts_early_and_keeps_everything():
    s = SentenceSplitter(soft_break_chars=40)
    text = "Hi there. This is a rather long clause, which keeps going for a while, and ends here! Tail"
    out = []
    for ch in text:
        out += s.feed(ch)
    out += s.flush()
    assert out[0] == "Hi there."
    assert " ".join(out) == text
    assert all(len(p) < 60 for p in out)


def test_session_merge_keeps_unrelated_fields_and_honours_null():
    base = SessionConfig().model_dump(mode="json")
    merged = SessionConfig.model_validate(merge(base, {"audio": {"input": {"turn_detection": {"silence_duration_ms": 800}}}}))
    td = merged.audio.input.turn_detection
    assert td.silence_duration_ms == 800 and td.prefix_padding_ms == 300 and td.type == "server_vad"
    off = SessionConfig.model_validate(merge(base, {"audio": {"input": {"turn_detection": None}}}))
    assert off.audio.input.turn_detection is None and off.silence_ms() is None
    sem = SessionConfig.model_validate(merge(base, {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}}}))
    assert sem.silence_ms() == 250
    assert "somagent" not in SessionConfig().wire()


def _req(*texts):
    roles = ["user", "assistant"]
    return ChatRequest(tuple(ChatMessage(roles[i % 2], t) for i, t in enumerate(texts)))


def test_embedded_responder_is_honest_and_simple():
    clock = lambda: datetime(2026, 11, 21, 14, 5, tzinfo=timezone.utc)
    bot = EmbeddedResponder(clock=clock)
    assert bot.reply_to(_req("what time is it")) == "It's 14:05."
    assert bot.reply_to(_req("what's the date today")) == "Today is Saturday, November 21, 2026."
    first = bot.reply_to(_req("ten of clubs"))
    assert first.startswith("I heard: ten of clubs.") and "offline responder" in first
    assert bot.reply_to(_req("ten of clubs", first, "go forward")) == "I heard: go forward."
    assert bot.reply_to(_req("")) == "I didn't catch anything. Could you say that again?"
    assert "offline responder" in bot.reply_to(_req("who are you"))


async def test_embedded_responder_streams_words_and_usage():
    chunks = [c async for c in EmbeddedResponder().stream(_req("go forward"))]
    text = "".join(c.text for c in chunks)
    assert text.startswith("I heard: go forward.")
    assert len([c for c in chunks if c.text]) > 3
    assert chunks[-1].usage is not None and chunks[-1].finish_reason == "stop"


async def test_pocketsphinx_streams_partials_words_and_confidence():
    rec = PocketsphinxRecognizer()
    await rec.start()
    pcm, _ = speech("goforward.wav")
    stream = rec.stream()
    partials = []
    for i in range(0, len(pcm), 320):
        p = await stream.push(pcm[i:i + 320])
        if p is not None:
            partials.append(p)
    final = await stream.finish()
    await rec.aclose()
    assert len(partials) >= 3 and all(not p.is_final for p in partials)
    assert final.is_final and final.text.startswith("go forward")
    assert [w.word for w in final.words] == final.text.split()
    starts = [w.start_s for w in final.words]
    assert starts == sorted(starts) and all(w.end_s > w.start_s for w in final.words)
    assert final.words[-1].end_s <= final.audio_s + 0.01
    assert 0.0 <= final.confidence <= 1.0


async def test_espeak_reads_text_from_stdin_never_as_options():
    tts = EspeakSynthesizer()
    await tts.start()
    blocks = [b async for b in tts.synthesize("--help -v xx Hello there.")]
    audio = np.concatenate(blocks)
    assert len(audio) / tts.sample_rate > 1.0  # the whole line was spoken, options and all
    assert np.abs(audio).max() > 1000
    assert [b async for b in tts.synthesize("   ")] == []


def test_sentence_splitter_first_piece_ends_at_first_soft_break():
    s = SentenceSplitter()
    out = []
    for word in "I heard: eight of spades, four of clubs. Then more, and more.".split(" "):
        out += s.feed(word + " ")
    out += s.flush()
    assert out == ["I heard:", "eight of spades, four of clubs.", "Then more, and more."]


async def test_pocketsphinx_worker_crash_fails_one_utterance_then_recovers():
    from adapters.asr.pocketsphinx import PocketsphinxConfig
    from adapters.errors import AdapterError

    rec = PocketsphinxRecognizer(PocketsphinxConfig(workers=1))
    await rec.start()
    pcm, _ = speech("goforward.wav")
    try:
        doomed = rec.stream()
        await doomed.push(pcm[:3200])
        rec._workers[0]._process.kill()  # the decoding process dies mid-utterance
        with pytest.raises(AdapterError):
            for i in range(3200, len(pcm), 320):
                await doomed.push(pcm[i:i + 320])
            await doomed.finish()
        fresh = rec.stream()  # a new worker is started for the next utterance
        for i in range(0, len(pcm), 320):
            await fresh.push(pcm[i:i + 320])
        assert (await fresh.finish()).text.startswith("go forward")
    finally:
        await rec.aclose()
