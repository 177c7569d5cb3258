"""The roles every model call is tagged with."""

from enum import StrEnum


class Role(StrEnum):
    DIALOGUE = "dialogue"
    TOOL_PLANNING = "tool_planning"
    CODE = "code"
    KNOWLEDGE = "knowledge"
    SUMMARY = "summary"
    SPEECH_RECOGNITION = "speech_recognition"
    SPEECH_SYNTHESIS = "speech_synthesis"
