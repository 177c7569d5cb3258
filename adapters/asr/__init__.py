from adapters.asr.base import RecognitionStream, SpeechRecognizer, Transcript, WordTiming

__all__ = ["RecognitionStream", "SpeechRecognizer", "Transcript", "WordTiming"]
