"""voice/policy.py: rules over utterance analytics fire once per run of matching turns; bad rules are refused."""

from __future__ import annotations

import json

import pytest

from voice.policy import PolicyEngine, parse_rules, rules_from_env

EXCITED = {"label": "excited", "mean_rms_dbfs": -10.0, "speech_rate_hz": 6.0}
NORMAL = {"label": "normal", "mean_rms_dbfs": -25.0, "speech_rate_hz": 4.0}


def test_a_rule_fires_once_when_its_run_reaches_the_turns_and_again_after_a_break():
    engine = PolicyEngine(parse_rules([{"name": "calm", "label": "excited", "turns": 3, "persona": "calm"}]))
    fired = [bool(engine.observe(f"i{n}", a)) for n, a in enumerate(
        [EXCITED, EXCITED, NORMAL, EXCITED, EXCITED, EXCITED, EXCITED, NORMAL, EXCITED, EXCITED, EXCITED])]
    assert fired == [False, False, False, False, False, True, False, False, False, False, True]
    (esc,) = PolicyEngine(parse_rules([{"name": "now", "label": "excited"}])).observe("i9", EXCITED)
    assert esc.payload()["rule"] == "now" and esc.payload()["label"] == "excited" and esc.item_id == "i9"


def test_metric_rules_compare_with_above_and_below():
    engine = PolicyEngine(parse_rules([{"name": "loud", "metric": "mean_rms_dbfs", "above": -12, "turns": 2},
                                       {"name": "mid", "metric": "speech_rate_hz", "above": 3, "below": 5}]))
    assert [e.rule for e in engine.observe("a", EXCITED)] == []
    assert [e.rule for e in engine.observe("b", EXCITED)] == ["loud"]
    assert [e.rule for e in engine.observe("c", NORMAL)] == ["mid"]
    assert engine.observe("d", {"label": "normal"}) == []  # no such metric: no match


@pytest.mark.parametrize("rules,message", [
    ({"name": "x"}, "JSON list"),
    ([{"label": "excited"}], "name is required"),
    ([{"name": "x"}], "a label or a metric"),
    ([{"name": "x", "label": "angry"}], "label must be one of"),
    ([{"name": "x", "metric": "mean_rms_dbfs"}], "above and/or below"),
    ([{"name": "x", "label": "excited", "turns": 0}], "turns must be"),
    ([{"name": "x", "label": "excited", "then": "escalate"}], "unknown field"),
])
def test_bad_rules_are_refused_with_the_reason(rules, message):
    with pytest.raises(ValueError, match=message):
        parse_rules(rules)


def test_rules_come_from_the_environment_or_a_file(tmp_path):
    rule = [{"name": "calm", "label": "excited", "turns": 2}]
    assert rules_from_env({"SOMAGENT_POLICY_RULES": json.dumps(rule)})[0].turns == 2
    (tmp_path / "p.json").write_text(json.dumps(rule))
    assert rules_from_env({"SOMAGENT_POLICY_FILE": str(tmp_path / "p.json")})[0].name == "calm"
    assert rules_from_env({}) == ()
    with pytest.raises(ValueError, match="not JSON"):
        rules_from_env({"SOMAGENT_POLICY_RULES": "[{"})
