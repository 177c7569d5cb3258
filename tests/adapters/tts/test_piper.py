"""adapters/tts/piper.py on the installed joe voice: real speech (Whisper hears it back), sentence by sentence off
the event loop, bounded, stopped by a caller that goes away, voices chosen by name."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

from adapters.errors import AdapterError, AdapterUnavailable
from adapters.tts.piper import PiperConfig, PiperSynthesizer, VoiceFiles, installed_voices
from tests.local_models import transcribe, wer

pytestmark = pytest.mark.asyncio(loop_scope="session")

SENTENCES = ["The weather is sunny today.", "Please open the door.", "I would like a cup of tea.",
             "The train leaves at noon.", "Thank you very much."]


async def _speak(tts: PiperSynthesizer, text: str, voice: str | None = None) -> np.ndarray:
    blocks = [block async for block in tts.synthesize(text, voice=voice)]
    assert blocks and all(b.dtype == np.int16 and b.ndim == 1 for b in blocks)
    return np.concatenate(blocks)


async def test_the_joe_voice_is_found_in_its_installed_package():
    voices = installed_voices()
    assert "en_US-joe-medium" in voices
    joe = voices["en_US-joe-medium"]
    assert joe.speaker == "joe" and joe.model.is_file() and joe.config.is_file()


async def test_whisper_hears_back_what_piper_says(piper, whisper_tiny):
    hypotheses = []
    for text in SENTENCES:
        pcm = await _speak(piper, text, voice="marin")  # an OpenAI voice name: the default voice
        assert len(pcm) / piper.sample_rate > 0.5
        hypotheses.append(await transcribe(whisper_tiny, pcm, piper.sample_rate))
    error = wer(SENTENCES, hypotheses)
    print(f"\nWhisper tiny.en WER on Piper joe: {error:.3f} {hypotheses}")
    assert error < 0.15, hypotheses


async def test_sentences_are_handed_on_as_each_is_synthesised(piper):
    text = " ".join(SENTENCES)
    before = piper.sentences
    per_sentence = []
    async for block in piper.synthesize(text):
        if piper.sentences - before > len(per_sentence):
            per_sentence.append(0)
        per_sentence[-1] += len(block)
    assert len(per_sentence) == len(SENTENCES)  # one synthesis per sentence, each passed on by itself
    assert all(n > 0.3 * piper.sample_rate for n in per_sentence)


async def test_synthesis_runs_off_the_event_loop(piper):
    order = []

    async def other_work():
        for _ in range(20):
            await asyncio.sleep(0)
        order.append("loop ran")

    async def first_block():
        async for _ in piper.synthesize("This sentence takes the worker a while to synthesise, all of it."):
            order.append("first audio")
            break

    await asyncio.gather(first_block(), other_work())
    assert order == ["loop ran", "first audio"]


async def test_a_caller_that_goes_away_stops_its_synthesis(piper):
    produced = piper.produced
    stream = piper.synthesize(" ".join(SENTENCES * 2))
    await anext(stream)
    await stream.aclose()  # a barge-in
    while piper.pending():
        await asyncio.sleep(0.01)
    # the first sentence, at most `ahead` more, and none after the stop
    assert piper.produced - produced <= 1 + piper.config.ahead + 1
    assert (await _speak(piper, "Still here.")).size  # the voice serves the next caller


async def test_a_full_worker_pool_refuses_at_once():
    tts = PiperSynthesizer(PiperConfig(workers=1, max_waiting=0, warmup=False))
    try:
        busy = tts.synthesize(" ".join(SENTENCES))
        await anext(busy)  # the only worker is on this text, `ahead` of its caller, until it is read or closed
        with pytest.raises(AdapterError, match="already running or waiting"):
            await anext(tts.synthesize("One more."))
        assert tts.refused == 1
        await busy.aclose()
        while tts.pending():
            await asyncio.sleep(0.01)
        assert (await _speak(tts, "Now there is room.")).size
    finally:
        await tts.aclose()


async def test_voices_are_chosen_by_name_and_unknown_names_get_the_default(tmp_path):
    joe = installed_voices()["en_US-joe-medium"]
    # a second "voice": joe's files under another name, in a voices directory
    shutil.copy(joe.config, tmp_path / "en_GB-second-medium.onnx.json")
    (tmp_path / "en_GB-second-medium.onnx").symlink_to(joe.model)
    voices = installed_voices(tmp_path)
    assert {"en_US-joe-medium", "en_GB-second-medium"} <= set(voices)
    tts = PiperSynthesizer(PiperConfig(voices_dir=str(tmp_path), warmup=False))
    try:
        await tts.start()
        assert tts.default_voice.name == "en_US-joe-medium"
        assert tts.voice_for("second").name == "en_GB-second-medium"
        assert tts.voice_for("en_GB-second-medium").name == "en_GB-second-medium"
        for unknown in ("alloy", "marin", "nobody", None, ""):
            assert tts.voice_for(unknown).name == "en_US-joe-medium"
        assert tts.voice_for("SECOND").speaker == "second"
        assert (await _speak(tts, "Hello from the second voice.", voice="second")).size
    finally:
        await tts.aclose()


async def test_a_missing_default_voice_falls_back_to_an_installed_one(caplog):
    tts = PiperSynthesizer(PiperConfig(default_voice="nobody", warmup=False))
    try:
        with caplog.at_level("WARNING"):
            await tts.start()
        assert tts.default_voice.speaker == "joe"
        assert any("nobody" in r.getMessage() for r in caplog.records)
    finally:
        await tts.aclose()


async def test_no_voice_or_a_broken_one_is_unavailable(tmp_path):
    empty = PiperSynthesizer(PiperConfig(warmup=False), voices={})
    with pytest.raises(AdapterUnavailable, match="no Piper voice"):
        await empty.start()
    with pytest.raises(AdapterUnavailable):  # refused at once afterwards, so the router falls back
        await anext(empty.synthesize("Hello."))
    await empty.aclose()
    (tmp_path / "en_US-broken-medium.onnx").write_bytes(b"not a model")
    (tmp_path / "en_US-broken-medium.onnx.json").write_text("{}")
    files = VoiceFiles("en_US-broken-medium", tmp_path / "en_US-broken-medium.onnx",
                       tmp_path / "en_US-broken-medium.onnx.json")
    broken = PiperSynthesizer(PiperConfig(warmup=False), voices={files.name: files})
    with pytest.raises(AdapterUnavailable, match="could not be loaded"):
        await broken.start()
    await broken.aclose()
