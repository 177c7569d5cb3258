"""LocalAgreement-n: the streaming policy that turns repeated re-transcriptions of a growing buffer into final words.

Pure bookkeeping, no model: the caller transcribes the audio buffer `[buffer_start_s, buffer_end_s]` again and again
and hands each hypothesis (words and segment ends in utterance time) to `insert`. A word becomes confirmed once `n`
consecutive hypotheses agree on it (as a common prefix after the confirmed words; n = 2 by default, as in
Machacek et al., "Turning Whisper into Real-Time Transcription System", 2023). Confirmed words never change; the rest
of the newest hypothesis is the tail, shown as a partial.

The buffer is trimmed (`buffer_start_s` moves forward, the caller drops that audio):
- at the end of a segment whose words are all confirmed, once the buffer is longer than `trim_s`;
- before each transcription, when it is longer than `max_buffer_s` (`enforce_limit`): at the last segment or word
  end the latest hypothesis offers in range (its words up to there are confirmed by force), else exactly at the
  limit. So the audio transcribed is never longer than `max_buffer_s`.

`finish` confirms what is left (the final hypothesis, or the latest tail when no audio came since).
"""

from __future__ import annotations

import string
from collections import deque
from dataclasses import dataclass

_PUNCT = str.maketrans("", "", string.punctuation + "¿¡“”‘’«»…")


@dataclass(frozen=True)
class Word:
    text: str  # as the model emitted it (usually with its leading space)
    start_s: float  # utterance time
    end_s: float
    probability: float | None = None


@dataclass(frozen=True)
class Hypothesis:
    words: tuple[Word, ...]
    segment_ends: tuple[float, ...] = ()  # utterance time


def normalise(text: str) -> str:
    """The form words are compared in: case, punctuation and spacing do not break agreement."""
    return text.translate(_PUNCT).strip().lower()


def join_words(words: tuple[Word, ...] | list[Word]) -> str:
    return "".join(w.text for w in words).strip()


class LocalAgreement:
    """Streaming state for one utterance. Times are seconds from the start of the utterance."""

    OVERLAP_NGRAM = 5  # longest n-gram searched when a hypothesis repeats already confirmed words
    TIME_SLACK_S = 0.1  # a new word may start this much before the last confirmed end and still count as new
    MIN_KEEP_S = 1.0  # a forced trim leaves at least this much audio

    def __init__(self, agreement: int = 2, trim_s: float = 10.0, max_buffer_s: float = 15.0) -> None:
        if agreement < 1:
            raise ValueError("agreement must be >= 1")
        if not 0 < trim_s <= max_buffer_s:
            raise ValueError("need 0 < trim_s <= max_buffer_s")
        if max_buffer_s <= self.MIN_KEEP_S:
            raise ValueError(f"max_buffer_s must exceed {self.MIN_KEEP_S} s")
        self.agreement = agreement
        self.trim_s = trim_s
        self.max_buffer_s = max_buffer_s
        self.buffer_start_s = 0.0
        self.confirmed: list[Word] = []
        self._history: deque[tuple[Word, ...]] = deque(maxlen=agreement)
        self._segment_ends: tuple[float, ...] = ()
        self.forced_trims = 0

    # -- views ---------------------------------------------------------------------------------------------
    @property
    def tail(self) -> tuple[Word, ...]:
        """Unconfirmed words of the newest hypothesis."""
        return self._history[-1] if self._history else ()

    @property
    def last_confirmed_end_s(self) -> float:
        return self.confirmed[-1].end_s if self.confirmed else 0.0

    def partial_words(self) -> tuple[Word, ...]:
        return tuple(self.confirmed) + self.tail

    def prompt(self, max_chars: int = 200) -> str:
        """Confirmed text already trimmed out of the buffer: context for the next transcription."""
        gone = [w for w in self.confirmed if w.end_s <= self.buffer_start_s]
        return join_words(gone)[-max_chars:].lstrip() if gone else ""

    # -- policy --------------------------------------------------------------------------------------------
    def _fresh(self, words: tuple[Word, ...]) -> tuple[Word, ...]:
        """The part of a hypothesis after the confirmed words (by time, then by repeated n-gram)."""
        limit = self.last_confirmed_end_s - self.TIME_SLACK_S
        new = [w for w in words if w.start_s > limit] if self.confirmed else list(words)
        if new and self.confirmed and abs(new[0].start_s - self.last_confirmed_end_s) < 1.0:
            for n in range(min(len(self.confirmed), len(new), self.OVERLAP_NGRAM), 0, -1):
                done = [normalise(w.text) for w in self.confirmed[-n:]]
                head = [normalise(w.text) for w in new[:n]]
                if done == head:
                    new = new[n:]
                    break
        return tuple(new)

    def _confirm(self, words: tuple[Word, ...]) -> None:
        if not words:
            return
        self.confirmed.extend(words)
        n = len(words)
        self._history = deque((h[n:] for h in self._history), maxlen=self.agreement)

    def insert(self, hypothesis: Hypothesis, buffer_end_s: float) -> tuple[Word, ...]:
        """Take the newest hypothesis of `[buffer_start_s, buffer_end_s]`; return the words it confirmed."""
        fresh = self._fresh(hypothesis.words)
        self._history.append(fresh)
        self._segment_ends = tuple(hypothesis.segment_ends)
        newly: tuple[Word, ...] = ()
        if len(self._history) == self.agreement:
            prefix = 0
            first = self._history[0]
            while prefix < len(first) and all(
                prefix < len(h) and normalise(h[prefix].text) == normalise(first[prefix].text) for h in self._history
            ):
                prefix += 1
            newly = fresh[:prefix]  # the newest hypothesis' spelling and timing
            self._confirm(newly)
        self._trim_at_segment(buffer_end_s)
        return newly

    def _trim_at_segment(self, buffer_end_s: float) -> None:
        if buffer_end_s - self.buffer_start_s <= self.trim_s or not self.confirmed:
            return
        done = self.last_confirmed_end_s + 1e-6
        ends = [e for e in self._segment_ends if self.buffer_start_s < e <= done]
        if ends:
            self.buffer_start_s = max(ends)

    def enforce_limit(self, buffer_end_s: float) -> float | None:
        """Call before transcribing `[buffer_start_s, buffer_end_s]`; trims to `max_buffer_s`. Returns the new start."""
        if buffer_end_s - self.buffer_start_s <= self.max_buffer_s:
            return None
        lo = buffer_end_s - self.max_buffer_s
        hi = buffer_end_s - self.MIN_KEEP_S
        cut = None
        if self.confirmed and lo <= self.last_confirmed_end_s <= hi:
            cut = self.last_confirmed_end_s
        tail = self.tail
        if cut is None:
            ends = [e for e in self._segment_ends if lo <= e <= hi]
            if ends:
                cut = max(ends)
        if cut is None:
            ends = [w.end_s for w in tail if lo <= w.end_s <= hi]
            if ends:
                cut = max(ends)
        if cut is None:
            cut = lo
        k = 0  # the tail's leading words that end before the cut are confirmed by force
        while k < len(tail) and tail[k].end_s <= cut + 1e-6:
            k += 1
        if k:
            self.confirmed.extend(tail[:k])
        self._history = deque([tail[k:]] if self._history else [], maxlen=self.agreement)
        self.buffer_start_s = cut
        self.forced_trims += 1
        return cut

    def preview(self, hypothesis: Hypothesis | None) -> tuple[Word, ...]:
        """What `finish(hypothesis)` would return, changing nothing."""
        rest = self._fresh(hypothesis.words) if hypothesis is not None else self.tail
        return tuple(self.confirmed) + rest

    def finish(self, hypothesis: Hypothesis | None) -> tuple[Word, ...]:
        """Confirm the rest: the final hypothesis' new words, or the newest tail when there is none."""
        rest = self._fresh(hypothesis.words) if hypothesis is not None else self.tail
        self._confirm(rest)
        self._history.clear()
        return tuple(self.confirmed)
