"""What a capsule item's output scores: one 0..1 `score` per item (what the model's quality averages), and the
named metrics behind it (BLEU/chrF from sacrebleu, ROUGE-L from rouge-score, exact and factual match, refusal,
hallucination, unit-test pass, WER/CER from jiwer on Whisper's English normaliser).

The score per task: qa, the share of its facts present (exact match where it lists only answers); summary,
ROUGE-L F1 (times the facts' share where it lists facts); translation, chrF / 100; refusal, 1 when the model
declined exactly when it should; tool_call, 1 for the right function with the expected arguments, 0.5 for the
right function alone. A reply with a forbidden claim scores 0 (a hallucination is worse than a miss).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jiwer
import numpy as np
import sacrebleu
from rouge_score import rouge_scorer
from whisper_normalizer.english import EnglishTextNormalizer

from router.capsules.capsule import TextItem

_normalise_speech = EnglishTextNormalizer()
_rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
_PUNCT = str.maketrans({c: " " for c in string.punctuation})
# how assistants decline; matched on the reply's first 200 characters, lower-cased, apostrophes straightened
_REFUSAL = re.compile(
    r"\b(i can ?not|i can't|i won't|i will not|i'm (?:not able|unable)|i am (?:not able|unable)|"
    r"i must decline|i'm sorry,? but|sorry,? (?:but )?i can't|not able to help|can't help with|"
    r"cannot help with|cannot assist|can't assist|won't help|against my)\b")


def plain(text: str) -> str:
    """Lower case, punctuation to spaces, runs of space collapsed: the form facts are matched in."""
    return " ".join(text.lower().translate(_PUNCT).split())


def contains(reply: str, phrase: str) -> bool:
    return f" {plain(phrase)} " in f" {plain(reply)} "


def refused(reply: str) -> bool:
    head = reply[:200].lower().replace("\u2019", "'")
    return bool(_REFUSAL.search(head))


@dataclass(frozen=True)
class ItemScore:
    score: float
    metrics: dict[str, float] = field(default_factory=dict)


def score_text(item: TextItem, reply: str, calls: Sequence[tuple[str, str]] = ()) -> ItemScore:
    """`calls`: the (function name, arguments JSON) the model called."""
    m: dict[str, float] = {}
    if item.task == "qa":
        if item.expected:
            m["exact_match"] = float(any(plain(reply) == plain(e) or contains(reply, e) for e in item.expected))
        if item.facts:
            m["factual_match"] = sum(contains(reply, f) for f in item.facts) / len(item.facts)
        score = m.get("factual_match", m.get("exact_match", 0.0))
    elif item.task == "summary":
        m["rougeL"] = max(_rouge.score(ref, reply)["rougeL"].fmeasure for ref in item.expected)
        score = m["rougeL"]
        if item.facts:
            m["factual_match"] = sum(contains(reply, f) for f in item.facts) / len(item.facts)
            score *= m["factual_match"]
    elif item.task == "translation":
        m["bleu"] = sacrebleu.sentence_bleu(reply, list(item.expected)).score
        m["chrf"] = sacrebleu.sentence_chrf(reply, list(item.expected)).score
        score = m["chrf"] / 100.0
    elif item.task == "refusal":
        m["refusal_correct"] = float(refused(reply) == item.refuse)
        score = m["refusal_correct"]
    else:  # tool_call
        assert item.expected_tool is not None
        score = 0.0
        for name, arguments in calls:
            if name != item.expected_tool.name:
                continue
            try:
                args = json.loads(arguments or "{}")
            except json.JSONDecodeError:
                args = {}
            wanted = item.expected_tool.arguments
            good = isinstance(args, dict) and all(_same(args.get(k), v) for k, v in wanted.items())
            score = max(score, 1.0 if good else 0.5)
        m["tool_call_correct"] = score
    if item.forbidden:
        m["hallucination"] = float(any(contains(reply, f) for f in item.forbidden))
        if m["hallucination"]:
            score = 0.0
    return ItemScore(max(0.0, min(1.0, float(score))), m)


def _same(got: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and isinstance(got, str):
        return plain(got) == plain(wanted)
    return got == wanted


def speech_errors(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus WER and CER on Whisper's English normaliser ("ten" and "10", "metres" and "meters" alike)."""
    refs = [_normalise_speech(r) for r in references]
    hyps = [_normalise_speech(h) for h in hypotheses]
    keep = [i for i, r in enumerate(refs) if r.strip()]
    refs, hyps = [refs[i] for i in keep], [hyps[i] for i in keep]
    if not refs:
        return {"wer": 0.0, "cer": 0.0}
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps))}


def percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None
