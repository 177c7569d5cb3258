"""Per-turn latency breakdown, from the user's end of speech to the first audio sent back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voice.events import TurnMetricsReport


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round((b - a) * 1000.0, 2)


@dataclass
class TurnMetrics:
    """Monotonic timestamps of one turn's stages; None where a stage did not happen."""

    item_id: str
    speech_end: float | None = None  # arrival of the last voiced audio
    end_of_turn: float | None = None  # speech_stopped decided (or manual commit)
    asr_final: float | None = None
    llm_first_token: float | None = None
    first_audio: float | None = None  # first output audio delta sent
    response_id: str | None = None
    asr_model: str | None = None
    audio: dict[str, Any] | None = None  # the utterance's energy analytics (no audio)
    prefetched: bool = False  # the reply was asked for before the turn ended (voice/prefetch.py)

    def breakdown(self) -> dict[str, float | None]:
        return {
            "speech_end_to_end_of_turn_ms": _ms(self.speech_end, self.end_of_turn),
            "end_of_turn_to_asr_final_ms": _ms(self.end_of_turn, self.asr_final),
            "asr_final_to_first_token_ms": _ms(self.asr_final, self.llm_first_token),
            "first_token_to_first_audio_ms": _ms(self.llm_first_token, self.first_audio),
            "end_of_turn_to_first_audio_ms": _ms(self.end_of_turn, self.first_audio),
            "voice_to_voice_ms": _ms(self.speech_end, self.first_audio),
        }

    def event(self) -> TurnMetricsReport:
        return TurnMetricsReport(item_id=self.item_id, response_id=self.response_id, asr_model=self.asr_model,
                                 values={**self.breakdown(), "audio": self.audio,
                                                                    "reply_prefetched": self.prefetched})
