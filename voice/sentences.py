"""Cut streamed reply text into speakable pieces so synthesis starts before the reply is complete."""

from __future__ import annotations

import itertools
import re

_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n+")
_SOFT = re.compile(r"[,;:]\s+")
# The first piece also ends after this many words (at the start of the next): a long first sentence would hold
# the first audio back ~20 ms a token (SmolLM2 on one core). bench_voice, models stack: voice-to-voice p50 ~770 ms
# with whole first sentences -> ~690 ms with five words (~670 with four, at more cost to the phrasing).
FIRST_PIECE_WORDS = 5
FIRST_PIECE_RUN_CHARS = 24  # the first piece, with no space to break at, is cut outright this long (digits)
_WORD_END = re.compile(r"\S\s+(?=\S)")  # a word followed by the start of the next: the word is whole


class SentenceSplitter:
    """Feed text deltas; get back whole sentences.

    The first piece also ends at the first comma, colon or semicolon, so the first audio leaves as early
    as possible; later a clause breaks at a comma only once it is long (`soft_break_chars`). Text with no
    punctuation to break at (a model reciting digits, a run-on list) breaks at the last space once twice that
    long, and outright at `hard_break_chars`: nothing waits for the whole reply to be spoken. A first run of
    characters with no space at all is cut at `FIRST_PIECE_RUN_CHARS`, and the first piece also ends after
    `first_words` words (0: at punctuation only).
    """

    def __init__(self, soft_break_chars: int = 60, hard_break_chars: int = 160,
                 first_words: int = FIRST_PIECE_WORDS) -> None:
        self._buf = ""
        self._first = True
        self.soft_break_chars = soft_break_chars
        self.hard_break_chars = max(hard_break_chars, 2 * soft_break_chars)
        self.first_words = first_words

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while (cut := self._cut()) is not None:
            piece, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if piece:
                out.append(piece)
                self._first = False
        return out

    def _cut(self) -> int | None:
        end = _END.search(self._buf)
        if self._first:
            soft = _SOFT.search(self._buf)
            if soft is not None and (end is None or soft.end() < end.end()):
                return soft.end()
            if end is None and self.first_words:
                ends = list(itertools.islice(_WORD_END.finditer(self._buf), self.first_words))
                if len(ends) == self.first_words:
                    return ends[-1].end()
            if end is None and len(self._buf) >= FIRST_PIECE_RUN_CHARS and len(self._buf.split()) == 1:
                return FIRST_PIECE_RUN_CHARS
        if end is not None:
            return end.end()
        if len(self._buf) < self.soft_break_chars:
            return None
        cut = None
        for soft in _SOFT.finditer(self._buf):
            cut = soft.end()
            if cut >= self.soft_break_chars // 2:
                break
        if cut is not None or len(self._buf) < 2 * self.soft_break_chars:
            return cut
        space = self._buf.rfind(" ", 0, self.hard_break_chars)
        if space > 0:
            return space + 1
        return self.hard_break_chars if len(self._buf) >= self.hard_break_chars else None

    def flush(self) -> list[str]:
        piece, self._buf = self._buf.strip(), ""
        return [piece] if piece else []
