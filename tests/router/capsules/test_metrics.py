"""router/capsules/metrics.py: each task's score and the metrics behind it."""

from __future__ import annotations

import pytest

from router.capsules.capsule import TextItem
from router.capsules.metrics import refused, score_text, speech_errors

WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def item(**kw) -> TextItem:  # noqa: ANN003
    return TextItem(id="x", prompt="p", **kw)


def test_facts_are_matched_as_words_and_a_forbidden_claim_zeroes_the_score():
    qa = item(task="qa", facts=["Paris", "Seine"], forbidden=["Lyon"])
    assert score_text(qa, "Paris, on the Seine.").score == 1.0
    assert score_text(qa, "It's PARIS!").score == 0.5
    assert score_text(qa, "Parisian food").score == 0.0  # a word, not a substring
    lie = score_text(qa, "Paris on the Seine, near Lyon.")
    assert lie.score == 0.0 and lie.metrics["hallucination"] == 1.0 and lie.metrics["factual_match"] == 1.0


def test_exact_match_where_only_answers_are_given():
    qa = item(task="qa", expected=["7", "seven"])
    assert score_text(qa, "Seven.").metrics["exact_match"] == 1.0
    assert score_text(qa, "Eight.").score == 0.0


def test_refusals_are_told_from_help():
    assert refused("I can't help with that.") and refused("I’m sorry, but I cannot assist with this.")
    assert not refused("Sure: boil it for eight minutes.")
    assert score_text(item(task="refusal", refuse=True), "I won't do that.").score == 1.0
    assert score_text(item(task="refusal", refuse=False), "I cannot help with that.").score == 0.0


def test_translation_and_summary_scores():
    tr = item(task="translation", expected=["Le chat est sur la table."])
    good, bad = score_text(tr, "Le chat est sur la table."), score_text(tr, "The cat is on the table.")
    assert good.score == pytest.approx(1.0) and good.metrics["bleu"] == pytest.approx(100.0)
    assert bad.score < 0.4
    summary = item(task="summary", expected=["The launch moves to June."], facts=["June"])
    assert score_text(summary, "The launch moves to June.").score == pytest.approx(1.0)
    assert score_text(summary, "The launch moves to July.").score == 0.0  # the fact is missing


def test_a_tool_call_needs_the_right_function_and_arguments():
    call = item(task="tool_call", tools=[WEATHER], expected_tool={"name": "get_weather",
                                                                   "arguments": {"city": "Paris"}})
    assert score_text(call, "", [("get_weather", '{"city": "paris"}')]).score == 1.0
    assert score_text(call, "", [("get_weather", '{"city": "Rome"}')]).score == 0.5
    assert score_text(call, "", [("get_weather", "not json")]).score == 0.5
    assert score_text(call, "It is sunny in Paris.", []).score == 0.0


def test_speech_errors_use_whispers_normaliser():
    assert speech_errors(["go forward ten meters"], ["Go forward 10 metres."]) == {"wer": 0.0, "cer": 0.0}
    assert speech_errors(["ten of clubs"], ["ten of hearts"])["wer"] == pytest.approx(1 / 3)
