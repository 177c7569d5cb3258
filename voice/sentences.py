"""Cut streamed reply text into speakable pieces so synthesis starts before the reply is complete."""

from __future__ import annotations

import re

_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n+")
_SOFT = re.compile(r"[,;:]\s+")


class SentenceSplitter:
    """Feed text deltas; get back whole sentences.

    The first piece also ends at the first comma, colon or semicolon, so the first audio leaves as early
    as possible; later a clause breaks at a comma only once it is long (`soft_break_chars`).
    """

    def __init__(self, soft_break_chars: int = 60) -> None:
        self._buf = ""
        self._first = True
        self.soft_break_chars = soft_break_chars

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
        if end is not None:
            return end.end()
        if len(self._buf) < self.soft_break_chars:
            return None
        cut = None
        for soft in _SOFT.finditer(self._buf):
            cut = soft.end()
            if cut >= self.soft_break_chars // 2:
                break
        return cut

    def flush(self) -> list[str]:
        piece, self._buf = self._buf.strip(), ""
        return [piece] if piece else []
