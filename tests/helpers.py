"""Shared test plumbing: where the repository and its fixture audio are, and how to read them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from voice.client import load_audio

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "fixtures" / "audio" / "speech"
MALFORMED = ROOT / "fixtures" / "audio" / "malformed"


def transcripts() -> dict[str, str]:
    with open(SPEECH / "transcripts.tsv", newline="") as fh:
        return {row["file"]: row["transcript"] for row in csv.DictReader(fh, delimiter="\t")}


def speech(name: str) -> tuple[np.ndarray, int]:
    return load_audio(SPEECH / name)
