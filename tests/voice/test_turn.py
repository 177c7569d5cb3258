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
