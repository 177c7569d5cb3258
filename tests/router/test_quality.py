"""router/quality.py: capsule figures anchor a model's quality; production feedback moves it, boundedly."""

from __future__ import annotations

import pytest

from router.quality import LIVE_WEIGHT, QualityBook
from router.roles import Role

ASR = Role.SPEECH_RECOGNITION


def test_capsules_average_and_live_feedback_moves_the_figure_at_most_its_weight():
    book = QualityBook()
    assert book.quality(ASR, "w", prior=0.8) is None  # nothing measured: the prior stands
    book.set_measured(ASR, "w", "a", 0.9)
    book.set_measured(ASR, "w", "b", 0.7)
    assert book.quality(ASR, "w") == pytest.approx(0.8)
    book.observe(ASR, "w", 0.2)
    one = book.quality(ASR, "w")
    assert 0.79 < one < 0.8  # one live observation barely moves it
    for _ in range(5000):
        book.observe(ASR, "w", 0.2)
    assert book.quality(ASR, "w") == pytest.approx((1 - LIVE_WEIGHT) * 0.8 + LIVE_WEIGHT * 0.2, abs=0.01)


def test_live_feedback_without_a_capsule_moves_the_prior():
    book = QualityBook()
    for _ in range(50):
        book.observe(ASR, "p", 1.0)
    assert 0.5 < book.quality(ASR, "p", prior=0.5) < 0.5 + LIVE_WEIGHT
    assert book.to_dict()["speech_recognition"]["p"]["live"]["n"] == 50
