from adapters.asr.base import RecognitionOptions, RecognitionStream, SpeechRecognizer, Transcript, WordTiming

__all__ = ["RecognitionOptions", "RecognitionStream", "SpeechRecognizer", "Transcript", "WordTiming"]
