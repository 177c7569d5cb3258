"""Published list prices of well-known hosted models, so a configured model's cost is known.

USD per 1,000 tokens (input, output) unless noted; figures copied from the providers' public pricing
pages on the dates given. A model not listed here has an *unknown* price unless the catalogue file
gives one.
"""

from __future__ import annotations

from router.catalog import Price, Unit

_OPENAI = "openai.com/api/pricing (2024-10)"
_ANTHROPIC = "anthropic.com/pricing (2024-11)"

KNOWN_PRICES: dict[str, Price] = {
    "gpt-4o": Price(Unit.TOKENS_1K, 0.0025, 0.010, _OPENAI),  # $2.50 / $10.00 per 1M
    "gpt-4o-mini": Price(Unit.TOKENS_1K, 0.00015, 0.0006, _OPENAI),  # $0.15 / $0.60 per 1M
    "claude-3-5-sonnet": Price(Unit.TOKENS_1K, 0.003, 0.015, _ANTHROPIC),  # $3 / $15 per 1M
    "claude-3-5-haiku": Price(Unit.TOKENS_1K, 0.0008, 0.004, _ANTHROPIC),  # $0.80 / $4 per 1M
    "mistral-small": Price(Unit.TOKENS_1K, 0.0002, 0.0006, "mistral.ai/pricing, mistral-small-2409 (2024-09)"),
    "llama-3.1-8b-instant": Price(Unit.TOKENS_1K, 0.00005, 0.00008, "groq.com/pricing (2024-10)"),  # $0.05 / $0.08
    "llama-3.1-70b-versatile": Price(Unit.TOKENS_1K, 0.00059, 0.00079, "groq.com/pricing (2024-10)"),
    "whisper-1": Price(Unit.AUDIO_SECOND, 0.0001, 0.0, _OPENAI),  # $0.006 per minute
    "tts-1": Price(Unit.CHARACTER, 0.000015, 0.0, _OPENAI),  # $15 per 1M characters
}


def known_price(model: str) -> Price | None:
    """The listed price of `model`, also for dated variants ("gpt-4o-mini-2024-07-18")."""
    name = model.rsplit("/", 1)[-1].lower()
    best = None
    for key in KNOWN_PRICES:
        if name == key or name.startswith(key + "-"):
            if best is None or len(key) > len(best):
                best = key
    return None if best is None else KNOWN_PRICES[best]
