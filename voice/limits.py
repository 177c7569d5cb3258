"""What one session may hold and ask for: each bound a clear `error` code, each configurable (SOMAGENT_*).

A client cannot grow the server without bound or flood the models: the conversation keeps at most `max_items`
items and `max_conversation_chars` characters of text (the oldest go first, each announced with
`conversation.item.deleted`, as the model's context would lose them anyway); one item, and the instructions, have
a size cap; live responses, out-of-band ones included, are capped; and client events other than audio appends are
rate-limited (audio is bounded by the input queue: a client far ahead of real time gets `input_overflow`); and a
client that stops reading is dropped once `max_outbox_events` wait for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SessionLimits:
    max_items: int = 1000  # conversation items kept (SOMAGENT_MAX_ITEMS)
    max_conversation_chars: int = 2_000_000  # text of all items: transcripts, messages, call arguments, outputs
    max_item_chars: int = 256_000  # one item created by the client (`item_too_large` beyond)
    max_instructions_chars: int = 64_000  # session or response instructions (`instructions_too_large`)
    max_responses: int = 4  # live responses per session, out-of-band ones included (`too_many_responses`)
    # one utterance's audio (the input buffer): with manual turns what is past it is dropped (`input_audio_buffer_
    # full`, once), with server VAD an utterance that never pauses ends there
    max_buffer_s: float = 120.0
    events_per_s: float = 200.0  # client events other than audio appends, sustained (`rate_limited` beyond)
    events_burst: int = 400  # ... and at once
    # server events waiting for a client that does not read them: past this the session ends (`slow_consumer`,
    # close 1008) rather than hold its reply in memory; a client reading at any sensible pace never has 100 queued
    max_outbox_events: int = 2000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SessionLimits:
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get(f"SOMAGENT_{f.name.upper()}")
            if raw:
                kind = float if f.type in ("float", float) else int
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise ValueError(f"SOMAGENT_{f.name.upper()} must be a number, not {raw!r}") from None
                if values[f.name] <= 0:
                    raise ValueError(f"SOMAGENT_{f.name.upper()} must be positive, not {raw!r}")
        return cls(**values)


class TokenBucket:
    """`rate` events a second on average, `burst` at once: `take()` is False when the client is over it."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
