"""The embedded offline responder: honest and simple, with no model behind it.

It acknowledges, repeats what it heard, and answers the time and the date. It says what it is
rather than pretending to understand more. It calls no tools, but speaks a tool's result that a client
added (the router hands it the conversation as text: `adapters.llm.base.without_tools`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from adapters.llm.base import ChatChunk, ChatModel, ChatRequest, ChatUsage, tool_result

INTRO = (
    "I'm the offline responder, so I can repeat what I heard and tell you the time or the date. "
    "Connect a language model for real answers."
)

_GREETING = re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", re.I)
_TIME = re.compile(r"\b(what time|the time|time is it)\b", re.I)
_DATE = re.compile(r"\b(what day|the date|today's date|what date|which day)\b", re.I)
_ABOUT = re.compile(r"\b(who are you|what are you|what can you do|help)\b", re.I)


class EmbeddedResponder(ChatModel):
    name = "embedded-responder"

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now().astimezone())

    def reply_to(self, request: ChatRequest) -> str:
        result = tool_result(request.messages[-1]) if request.messages else None
        if result is not None:
            return f"{result[0]} says: {result[1]}" if result[1].strip() else f"{result[0]} returned nothing."
        heard = next((m.content.strip() for m in reversed(request.messages) if m.role == "user"), "")
        first_turn = not any(m.role == "assistant" for m in request.messages)
        now = self._clock()
        if not heard:
            return "I didn't catch anything. Could you say that again?"
        if _TIME.search(heard):
            return f"It's {now.strftime('%H:%M')}."
        if _DATE.search(heard):
            return f"Today is {now.strftime('%A, %B')} {now.day}, {now.year}."
        if _ABOUT.search(heard):
            return INTRO
        if _GREETING.search(heard) and len(heard.split()) <= 4:
            return "Hello! " + INTRO if first_turn else "Hello again."
        reply = f"I heard: {heard}."
        return f"{reply} {INTRO}" if first_turn else reply

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        text = self.reply_to(request)
        if request.max_tokens is not None:
            text = " ".join(text.split(" ")[: max(1, request.max_tokens)])
        words = text.split(" ")
        for i, word in enumerate(words):
            yield ChatChunk(text=word if i == 0 else " " + word)
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        yield ChatChunk(usage=ChatUsage(input_tokens=prompt_words, output_tokens=len(words)), finish_reason="stop")
