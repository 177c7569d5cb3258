from adapters.tts.base import SpeechSynthesizer

__all__ = ["SpeechSynthesizer"]
