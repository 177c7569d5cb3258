"""Model adapters: one small interface per modality (asr, llm, tts), one module per provider."""
