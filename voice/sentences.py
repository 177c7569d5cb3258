"""Cut streamed reply text into speakable pieces so synthesis starts before the reply is complete."""

from __future__ import annotations

import re

_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n+")
_SOFT = re.compile(r"[,;:]\s+")


class SentenceSplitter:
    """Feed text deltas; get back whole sentences. A long clause breaks at a comma so the first audio is early."""

    def __init__(self, soft_break_chars: int = 60) -> None:
        self._buf = ""
        self.soft_break_chars = soft_break_chars

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while True:
            m = _END.search(self._buf)
            if m is None and len(self._buf) >= self.soft_break_chars:
                m = None
                for soft in _SOFT.finditer(self._buf):
                    m = soft
                    if soft.end() >= self.soft_break_chars // 2:
                        break
            if m is None:
                return out
            piece, self._buf = self._buf[: m.end()].strip(), self._buf[m.end():]
            if piece:
                out.append(piece)

    def flush(self) -> list[str]:
        piece, self._buf = self._buf.strip(), ""
        return [piece] if piece else []
