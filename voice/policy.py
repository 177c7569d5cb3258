"""Energy analytics to policy: a small rule set over each user utterance's analytics (dsp/analytics.py), such as
"excited for 3 turns in a row -> escalate".

A rule (SOMAGENT_POLICY_RULES, a JSON list, or the file SOMAGENT_POLICY_FILE):

    {"name": "calm-down", "label": "excited", "turns": 3, "persona": "calm-support"}
    {"name": "shouting", "metric": "mean_rms_dbfs", "above": -12, "turns": 2}

matches an utterance by its `label` (normal, excited, whisper, anomalous) or by a `metric` of the analytics
`above` and/or `below` a value; when `turns` utterances in a row match, it fires: the session sends
`somagent.policy.escalation` (to clients that asked for `somagent` events) and the router's bus carries
`policy.escalation` to the Command Center, and with `persona` the session's persona becomes that one, so the router
applies that persona's overrides from the next call on. A rule fires once per run of matches; a run is broken by
an utterance that does not match. Rules are validated at start (a bad one stops the server with its reason).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABELS = ("normal", "excited", "whisper", "anomalous")


@dataclass(frozen=True)
class Rule:
    name: str
    turns: int = 1
    label: str | None = None
    metric: str | None = None
    above: float | None = None
    below: float | None = None
    persona: str | None = None

    def matches(self, analytics: Mapping[str, Any]) -> bool:
        if self.label is not None:
            return analytics.get("label") == self.label
        value = analytics.get(self.metric or "")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return (self.above is None or value > self.above) and (self.below is None or value < self.below)


@dataclass(frozen=True)
class Escalation:
    rule: str
    turns: int
    persona: str | None
    item_id: str
    analytics: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"rule": self.rule, "turns": self.turns, "persona": self.persona, "item_id": self.item_id,
                "label": self.analytics.get("label"), "mean_rms_dbfs": self.analytics.get("mean_rms_dbfs"),
                "speech_rate_hz": self.analytics.get("speech_rate_hz")}


def parse_rules(data: Any) -> tuple[Rule, ...]:
    """ValueError naming the rule and field that is wrong."""
    if not isinstance(data, list):
        raise ValueError("policy rules must be a JSON list")
    rules = []
    for i, raw in enumerate(data):
        where = f"policy rule {i}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} is not an object")
        unknown = set(raw) - {"name", "turns", "label", "metric", "above", "below", "persona"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: a name is required")
        turns = raw.get("turns", 1)
        if not isinstance(turns, int) or isinstance(turns, bool) or not 1 <= turns <= 100:
            raise ValueError(f"{where} ({name}): turns must be 1..100")
        label, metric = raw.get("label"), raw.get("metric")
        if (label is None) == (metric is None):
            raise ValueError(f"{where} ({name}): give a label or a metric")
        if label is not None and label not in LABELS:
            raise ValueError(f"{where} ({name}): label must be one of {', '.join(LABELS)}")
        bounds = [raw.get("above"), raw.get("below")]
        if metric is not None and (not isinstance(metric, str) or all(b is None for b in bounds)):
            raise ValueError(f"{where} ({name}): a metric needs above and/or below")
        if any(b is not None and (not isinstance(b, (int, float)) or isinstance(b, bool)) for b in bounds):
            raise ValueError(f"{where} ({name}): above and below are numbers")
        persona = raw.get("persona")
        if persona is not None and (not isinstance(persona, str) or not 1 <= len(persona) <= 128):
            raise ValueError(f"{where} ({name}): persona must be a name of 1-128 characters")
        rules.append(Rule(name, turns, label, metric, raw.get("above"), raw.get("below"), persona))
    return tuple(rules)


def rules_from_env(env: Mapping[str, str]) -> tuple[Rule, ...]:
    if env.get("SOMAGENT_POLICY_RULES"):
        text = env["SOMAGENT_POLICY_RULES"]
    elif env.get("SOMAGENT_POLICY_FILE"):
        try:
            text = Path(env["SOMAGENT_POLICY_FILE"]).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read SOMAGENT_POLICY_FILE: {exc.strerror}") from None
    else:
        return ()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"policy rules are not JSON: {exc}") from None
    return parse_rules(data)


class PolicyEngine:
    """One session's runs of matching utterances, rule by rule."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self._runs = [0] * len(rules)

    def observe(self, item_id: str, analytics: dict[str, Any]) -> list[Escalation]:
        fired = []
        for i, rule in enumerate(self.rules):
            if not rule.matches(analytics):
                self._runs[i] = 0
                continue
            self._runs[i] += 1
            if self._runs[i] == rule.turns:  # once per run: the next fires after a break
                fired.append(Escalation(rule.name, rule.turns, rule.persona, item_id, dict(analytics)))
        return fired
