"""voice/turn.py: the parts of the turn loop with no session around them (the session's tests drive the rest)."""

from __future__ import annotations

from voice.turn import StableWords


def test_a_word_is_sent_once_two_partials_agree_on_it_and_the_final_sends_the_rest():
    words = StableWords()
    assert words.partial("turn") == ""
    assert words.partial("turn on") == "turn"
    assert words.partial("turn on the lice") == " on"
    assert words.partial("turn on the lights") == " the"  # "lice" changed: not sent
    assert words.partial("turn on") == ""  # a shorter partial takes nothing back
    assert words.final("turn on the lights please") == " lights please"
    assert "".join(["turn", " on", " the", " lights please"]) == "turn on the lights please"


def test_a_final_that_disagrees_with_what_was_sent_adds_nothing():
    words = StableWords()
    words.partial("four of")
    assert words.partial("four of clubs") == "four of"
    assert words.final("for all clubs") == ""
    assert StableWords().final("hello there") == "hello there"  # no partials: the final is the one delta


def test_transcription_delay_picks_how_many_partials_must_agree():
    soon = StableWords.for_delay("minimal")
    assert soon.partial("turn") == "turn"  # the first partial's words go out at once
    assert soon.partial("turn on the lice") == " on the lice"
    assert soon.final("turn on the lights") == ""  # what was sent cannot be taken back: completed corrects it
    careful = StableWords.for_delay("high")
    assert careful.partial("turn on") == "" and careful.partial("turn on the") == ""
    assert careful.partial("turn on the lights") == "turn on"  # three in a row agree on "turn on"
    final_only = StableWords.for_delay("xhigh")
    assert all(final_only.partial(p) == "" for p in ("turn", "turn on", "turn on", "turn on"))
    assert final_only.final("turn on the lights") == "turn on the lights"
    assert StableWords.for_delay(None).agree == StableWords.for_delay("medium").agree == 2
