"""adapters/asr/local_agreement.py: the LocalAgreement-2 streaming policy on scripted hypotheses (no model)."""

from __future__ import annotations

import random

import pytest

from adapters.asr.local_agreement import Hypothesis, LocalAgreement, Word, join_words, normalise


def hyp(*spec: tuple[str, float, float], ends: tuple[float, ...] = ()) -> Hypothesis:
    return Hypothesis(tuple(Word(" " + text, start, end, 0.9) for text, start, end in spec), ends)


def texts(words) -> list[str]:
    return [w.text.strip() for w in words]


def test_nothing_is_confirmed_until_two_hypotheses_agree():
    la = LocalAgreement()
    assert la.insert(hyp(("hello", 0.0, 0.4), ("word", 0.5, 0.9)), 1.0) == ()
    assert la.confirmed == []
    assert texts(la.tail) == ["hello", "word"]
    newly = la.insert(hyp(("hello", 0.0, 0.4), ("world", 0.5, 0.9), ("again", 1.0, 1.4)), 1.5)
    assert texts(newly) == ["hello"]
    assert texts(la.tail) == ["world", "again"]
    assert join_words(la.partial_words()) == "hello world again"


def test_agreement_grows_and_confirmed_words_never_change():
    la = LocalAgreement()
    la.insert(hyp(("a", 0, 0.3), ("b", 0.4, 0.6)), 1.0)
    la.insert(hyp(("a", 0, 0.3), ("b", 0.4, 0.6), ("c", 0.7, 0.9)), 1.5)
    assert texts(la.confirmed) == ["a", "b"]
    # a later hypothesis rewrites the confirmed part: confirmed words stay, only the new part counts
    la.insert(hyp(("x", 0, 0.3), ("y", 0.4, 0.6), ("c", 0.7, 0.9), ("d", 1.0, 1.2)), 2.0)
    assert texts(la.confirmed) == ["a", "b", "c"]
    assert texts(la.tail) == ["d"]


def test_agreement_ignores_case_and_punctuation_and_takes_newest_spelling():
    assert normalise(" Hello,") == normalise("hello") == "hello"
    la = LocalAgreement()
    la.insert(hyp(("hello", 0, 0.4), ("there", 0.5, 0.8)), 1.0)
    la.insert(hyp(("Hello,", 0, 0.45), ("there.", 0.5, 0.8)), 1.5)
    assert texts(la.confirmed) == ["Hello,", "there."]
    assert la.confirmed[0].end_s == 0.45


def test_repeated_words_after_the_confirmed_ones_are_not_duplicated():
    la = LocalAgreement()
    la.insert(hyp(("the", 0, 0.3), ("cat", 0.4, 0.7)), 1.0)
    la.insert(hyp(("the", 0, 0.3), ("cat", 0.4, 0.7)), 1.5)
    assert texts(la.confirmed) == ["the", "cat"]
    # after a trim the model sees the same words again, with times shifted past the confirmed end
    la.insert(hyp(("the", 0.75, 0.9), ("cat", 0.95, 1.1), ("sat", 1.2, 1.5)), 2.0)
    la.insert(hyp(("the", 0.75, 0.9), ("cat", 0.95, 1.1), ("sat", 1.2, 1.5)), 2.5)
    assert texts(la.confirmed) == ["the", "cat", "sat"]


def test_agreement_one_confirms_at_once_and_three_needs_three():
    one = LocalAgreement(agreement=1)
    one.insert(hyp(("a", 0, 0.3)), 0.5)
    assert texts(one.confirmed) == ["a"]
    three = LocalAgreement(agreement=3)
    three.insert(hyp(("a", 0, 0.3)), 0.5)
    three.insert(hyp(("a", 0, 0.3)), 1.0)
    assert three.confirmed == []
    three.insert(hyp(("a", 0, 0.3)), 1.5)
    assert texts(three.confirmed) == ["a"]


def test_trims_at_the_last_confirmed_segment_end_once_the_buffer_is_long():
    la = LocalAgreement(trim_s=10.0, max_buffer_s=15.0)
    words = (("one", 0.5, 2.0), ("two", 3.0, 5.5), ("three", 6.5, 9.0), ("four", 10.0, 11.0))
    ends = (2.5, 6.0, 9.5, 11.0)
    la.insert(hyp(*words, ends=ends), 11.2)
    la.insert(hyp(*words[:3], ("for", 10.0, 11.0), ends=ends), 11.7)
    # confirmed up to "three" (ends 9.0): the last segment end not after it is 6.0; the segment holding "three"
    # ends at 9.5, after the confirmed words, so it may still grow
    assert texts(la.confirmed) == ["one", "two", "three"]
    assert la.buffer_start_s == 6.0
    assert la.prompt() == "one two"


def test_no_trim_while_the_buffer_is_short_or_the_segment_unconfirmed():
    short = LocalAgreement(trim_s=10.0)
    short.insert(hyp(("a", 0, 1), ends=(1.5,)), 4.0)
    short.insert(hyp(("a", 0, 1), ends=(1.5,)), 4.5)
    assert texts(short.confirmed) == ["a"] and short.buffer_start_s == 0.0
    unconfirmed = LocalAgreement(trim_s=2.0)
    unconfirmed.insert(hyp(("a", 0, 1), ("b", 1.2, 2.0), ends=(2.5,)), 4.0)
    unconfirmed.insert(hyp(("a", 0, 1), ("c", 1.2, 2.0), ends=(2.5,)), 4.5)
    assert texts(unconfirmed.confirmed) == ["a"]
    assert unconfirmed.buffer_start_s == 0.0  # the only segment end (2.5) lies after the confirmed words


def simulate(la: LocalAgreement, seconds: float, make_hypothesis, step_s: float = 0.5) -> list[float]:
    """Drive the policy like the adapter does; return the buffer length at every transcription."""
    lengths = []
    end = 0.0
    while end < seconds:
        end += step_s
        la.enforce_limit(end)
        lengths.append(end - la.buffer_start_s)
        la.insert(make_hypothesis(la.buffer_start_s, end), end)
    return lengths


def test_buffer_never_beyond_15_s_when_nothing_ever_agrees():
    rng = random.Random(7)
    la = LocalAgreement(trim_s=10.0, max_buffer_s=15.0)

    def babble(start: float, end: float) -> Hypothesis:  # a different word every 0.4 s, never the same twice
        t, words = start, []
        while t + 0.3 < end:
            words.append(Word(f" w{rng.randrange(10**9)}", t, t + 0.3, 0.5))
            t += 0.4
        return Hypothesis(tuple(words), ())

    lengths = simulate(la, 60.0, babble)
    assert max(lengths) <= 15.0 + 1e-9
    assert la.forced_trims > 0
    starts = [w.start_s for w in la.confirmed]
    assert starts == sorted(starts)  # forced confirmations keep order


def test_buffer_never_beyond_15_s_in_one_endless_segment():
    la = LocalAgreement(trim_s=10.0, max_buffer_s=15.0)

    def steady(start: float, end: float) -> Hypothesis:  # consistent words, but no segment ever ends
        first = int(start / 0.5)
        words = tuple(Word(f" w{i}", i * 0.5, i * 0.5 + 0.4, 0.9) for i in range(first, int(end / 0.5)))
        return Hypothesis(tuple(w for w in words if w.end_s <= end), ())

    lengths = simulate(la, 40.0, steady)
    assert max(lengths) <= 15.0 + 1e-9
    confirmed = texts(la.confirmed)
    assert len(confirmed) == len(set(confirmed))  # no word twice across trims
    assert confirmed[:5] == ["w0", "w1", "w2", "w3", "w4"]


def test_silence_without_words_is_cut_at_the_limit():
    la = LocalAgreement(trim_s=10.0, max_buffer_s=15.0)
    lengths = simulate(la, 30.0, lambda s, e: Hypothesis((), ()))
    assert max(lengths) <= 15.0 + 1e-9
    assert la.buffer_start_s == pytest.approx(30.0 - 15.0, abs=0.51)
    assert la.confirmed == []


def test_finish_flushes_the_tail():
    la = LocalAgreement()
    la.insert(hyp(("a", 0, 0.3), ("b", 0.4, 0.6)), 1.0)
    la.insert(hyp(("a", 0, 0.3), ("c", 0.4, 0.6), ("d", 0.7, 0.9)), 1.5)
    assert texts(la.confirmed) == ["a"]
    assert texts(la.finish(None)) == ["a", "c", "d"]


def test_finish_with_a_final_hypothesis_confirms_its_new_words_once():
    la = LocalAgreement()
    la.insert(hyp(("a", 0, 0.3), ("b", 0.4, 0.6)), 1.0)
    la.insert(hyp(("a", 0, 0.3), ("b", 0.4, 0.6)), 1.5)
    final = la.finish(hyp(("a", 0, 0.3), ("b", 0.4, 0.6), ("e", 1.6, 1.9)))
    assert texts(final) == ["a", "b", "e"]
    assert la.tail == ()


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        LocalAgreement(agreement=0)
    with pytest.raises(ValueError):
        LocalAgreement(trim_s=20.0, max_buffer_s=15.0)
