"""voice/replay.py without a server: reference transcripts read from a TSV, word errors after Whisper's English
normaliser, and the summary's per-file and corpus WER."""

from __future__ import annotations

import pytest

from tests.helpers import SPEECH
from voice.replay import FileResult, TranscriptFileError, TurnResult, read_transcripts, summary, word_errors


def _result(file: str, *transcripts: str | None, error: str | None = None) -> FileResult:
    return FileResult(file=file, error=error, turns=[TurnResult(user_transcript=t) for t in transcripts])


def test_the_fixture_transcripts_are_read_by_file_name():
    refs = read_transcripts(SPEECH / "transcripts.tsv")
    assert len(refs) == len(list(SPEECH.glob("*.wav")))
    assert refs["goforward.wav"] == "go forward ten meters"  # the `source` column is ignored


@pytest.mark.parametrize("text,complaint", [
    ("goforward.wav\tgo forward ten meters\n", "header"),
    ("name\ttext\ngoforward.wav\tgo\n", "header"),
    ("file\ttranscript\ngoforward.wav\n", "line 2"),
    ("file\ttranscript\n\ngoforward.wav\tgo\ngoforward.wav\tstop\n", "two transcripts"),
    ("", "header"),
])
def test_a_malformed_transcript_file_is_refused_with_a_reason(tmp_path, text, complaint):
    path = tmp_path / "refs.tsv"
    path.write_text(text)
    with pytest.raises(TranscriptFileError, match=complaint):
        read_transcripts(path)


def test_a_missing_or_binary_transcript_file_is_refused(tmp_path):
    with pytest.raises(TranscriptFileError, match="cannot read"):
        read_transcripts(tmp_path / "absent.tsv")
    (tmp_path / "binary.tsv").write_bytes(b"\xff\xfe\x00file")
    with pytest.raises(TranscriptFileError, match="cannot read"):
        read_transcripts(tmp_path / "binary.tsv")


def test_quotes_in_a_transcript_are_text(tmp_path):
    path = tmp_path / "refs.tsv"
    path.write_text('file\ttranscript\na.wav\t"hello" she said\nb.wav\tit\'s "fine\n')
    assert read_transcripts(path) == {"a.wav": '"hello" she said', "b.wav": 'it\'s "fine'}


def test_word_errors_normalise_numerals_case_and_punctuation():
    assert word_errors("ten of clubs", "10 of Clubs.") == (0, 3)
    assert word_errors("and mister john dashwood", "And Mr. John Dashwood,") == (0, 4)
    assert word_errors("go forward ten meters", "go forward") == (2, 4)
    assert word_errors("go forward ten meters", "go backward ten meters please") == (2, 4)
    assert word_errors("go forward", "") == (2, 2)
    assert word_errors("", "stray words") == (2, 0)


def test_the_summary_scores_each_file_and_the_corpus():
    refs = {"a.wav": "go forward ten meters", "dir/b.wav": "seven of clubs"}
    results = [
        _result("fixtures/a.wav", "Go forward", None, "10 meters."),  # by file name; turns joined, None skipped
        _result("dir/b.wav", "seven of"),  # by the path as given
        _result("c.wav", "no reference for this one"),
        _result("fixtures/dir/b.wav", error="cannot read"),  # neither the path nor the name is in refs
    ]
    line = summary(results, refs)
    a, b, c, d = line["files"]
    assert a["reference"] == "go forward ten meters" and a["hypothesis"] == "Go forward 10 meters."
    assert a["wer"] == 0.0
    assert b["hypothesis"] == "seven of" and b["wer"] == pytest.approx(1 / 3, abs=1e-4)
    assert c["reference"] is None and c["wer"] is None
    assert d["wer"] is None
    assert line["wer"] == pytest.approx(1 / 7, abs=1e-4)  # errors over reference words, not a mean of rates


def test_a_file_that_failed_has_no_wer_even_with_a_reference():
    line = summary([_result("a.wav", error="connection failed")], {"a.wav": "hello"})
    assert line["files"][0]["wer"] is None and line["wer"] is None


def test_without_references_the_summary_is_unchanged():
    line = summary([_result("a.wav", "hello")])
    assert line == {"type": "summary", "files": [FileResult("a.wav", turns=[TurnResult(user_transcript="hello")])
                                                  .summary()]}
    assert "wer" not in line["files"][0]
