"""Replay every speech fixture as a live client: a final transcript and a spoken reply per utterance."""

import json
import subprocess
import sys

import jiwer
import pytest

from tests.helpers import MALFORMED, ROOT, SPEECH, transcripts
from voice import cli
from voice.replay import replay_file, word_errors

NORMALISE = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.Strip(),
                           jiwer.RemoveMultipleSpaces(), jiwer.ReduceToListOfListOfWords()])


async def test_every_speech_fixture(server_url, capsys):
    refs = transcripts()
    hyps, truths = [], []
    for name, ref in sorted(refs.items()):
        result = await replay_file(server_url, SPEECH / name, speed=4.0)
        assert result.error is None, result.error
        assert len(result.turns) == 1, f"{name}: {[t.user_transcript for t in result.turns]}"
        turn = result.turns[0]
        assert turn.user_transcript, f"{name}: empty final transcript"
        assert turn.assistant_transcript and turn.assistant_audio_ms > 500, f"{name}: no spoken reply"
        assert turn.response_status == "completed"
        assert turn.voice_to_voice_ms is not None and turn.voice_to_voice_ms > 0
        assert turn.server_metrics and turn.server_metrics["end_of_turn_to_first_audio_ms"] is not None
        hyps.append(turn.user_transcript)
        truths.append(ref)
    wer = jiwer.wer(truths, hyps, reference_transform=NORMALISE, hypothesis_transform=NORMALISE)
    with capsys.disabled():
        print(f"\npocketsphinx WER over {len(truths)} fixtures: {wer:.3f}")
    assert wer < 0.5  # pocketsphinx's general en-US model; measured about 0.2-0.3 on this set


def test_replay_cli_json_with_malformed_files():
    files = [str(SPEECH / "cards-001.wav"), str(MALFORMED / "evil.wav"), str(MALFORMED / "awful.wav"),
             str(MALFORMED / "bad.wav"), str(MALFORMED / "null.wav"), str(SPEECH / "cards-003.wav")]
    proc = subprocess.run([sys.executable, "-m", "voice", "replay", *files, "--json", "--speed", "4"],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1]
    assert summary["type"] == "summary"
    by_file = {f["file"]: f for f in summary["files"]}
    assert [f["file"] for f in summary["files"]] == files  # every file reported, in order
    for bad in files[1:5]:
        assert by_file[bad]["error"] and bad.split("/")[-1] in by_file[bad]["error"]
        assert by_file[bad]["turns"] == []
    assert "sample rate" in by_file[files[2]]["error"]
    for good in (files[0], files[5]):
        entry = by_file[good]
        assert entry["error"] is None
        (turn,) = entry["turns"]
        assert set(turn) >= {"user_transcript", "assistant_transcript", "assistant_audio_ms", "voice_to_voice_ms"}
        assert turn["user_transcript"] and turn["assistant_audio_ms"] > 0
    events = lines[:-1]
    assert all("file" in e and "type" in e for e in events)
    assert any(e["type"] == "response.output_audio.delta" and e["delta_bytes"] > 0 for e in events)


@pytest.mark.parametrize("asr,model", [("faster-whisper", "faster-whisper"), ("pocketsphinx", "pocketsphinx-en-us")])
def test_replay_cli_chooses_the_recogniser(asr, model):
    args = [sys.executable, "-m", "voice", "replay", str(SPEECH / "goforward.wav"), "--json", "--speed", "0",
            "--asr", asr]
    if asr == "faster-whisper":
        from adapters.asr.faster_whisper import bundled_model_dir

        args += ["--asr-model", str(bundled_model_dir())]  # tiny.en: the random-weight model believes no word
    proc = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout.splitlines()[-1])["files"]
    (turn,) = entry["turns"]
    assert turn["server_metrics"]["asr_model"] == model
    assert "forward" in turn["user_transcript"].lower()


def test_replay_cli_refuses_asr_with_url():
    proc = subprocess.run([sys.executable, "-m", "voice", "replay", str(SPEECH / "goforward.wav"), "--url",
                           "http://127.0.0.1:9", "--asr", "pocketsphinx"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "--url" in proc.stderr


def test_replay_cli_scores_against_the_transcripts(capsys):
    """In-process CLI and server (the light stack: pocketsphinx): the file's reference, what was heard and its WER,
    and the overall WER on the summary line."""
    code = cli.main(["replay", str(SPEECH / "goforward.wav"), "--json", "--speed", "0",
                     "--transcripts", str(SPEECH / "transcripts.tsv")])
    out = capsys.readouterr().out
    assert code == 0
    line = json.loads(out.splitlines()[-1])
    (entry,) = line["files"]
    assert entry["reference"] == "go forward ten meters"
    assert entry["hypothesis"] == " ".join(t["user_transcript"] for t in entry["turns"]) != "", entry
    errors, words = word_errors(entry["reference"], entry["hypothesis"])
    assert 0.0 <= entry["wer"] <= 1.0 and entry["wer"] == pytest.approx(errors / words, abs=1e-4)
    assert line["wer"] == entry["wer"]  # one file: the corpus is that file


@pytest.mark.parametrize("content,message", [(None, "cannot read transcripts"),
                                             ("goforward.wav go forward\n", "header"),
                                             ("file\ttranscript\ngoforward.wav\n", "line 2")])
def test_replay_cli_refuses_a_bad_transcript_file(tmp_path, capsys, content, message):
    path = tmp_path / "refs.tsv"
    if content is not None:
        path.write_text(content)
    code = cli.main(["replay", str(SPEECH / "goforward.wav"), "--json", "--transcripts", str(path)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""  # refused before any audio is replayed
    assert message in captured.err and str(path) in captured.err
