from adapters.llm.base import ChatChunk, ChatMessage, ChatModel, ChatRequest, ChatUsage

__all__ = ["ChatChunk", "ChatMessage", "ChatModel", "ChatRequest", "ChatUsage"]
