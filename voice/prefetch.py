"""A reply asked for before the user's turn has ended, held until it has.

Once the user has been silent a while, the recogniser decodes the final transcript ahead of the endpoint
(`speculate`); with that text the dialogue model can be asked at once instead of when the endpoint fires,
~70-150 ms later. The chunks it streams are kept, not sent: the turn's response takes them when it makes the very
same request (same messages, same limits, same tools), and anything else (the user spoke again, the transcript
or the conversation changed, no response followed) closes the request, which the router records as cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from adapters.aio import cancel_and_wait
from adapters.llm.base import ChatChunk, ChatRequest
from router import CallContext, ModelRouter, Role

_END = object()


class PrefetchedReply:
    """`router.stream_chat(role, request, ctx)` started now, its chunks (or the error that ended it) kept in
    order for `chunks()`. Bounded: the reply is bounded by the request's token limit, and closed if unused."""

    def __init__(self, router: ModelRouter, role: Role, request: ChatRequest, ctx: CallContext) -> None:
        self.role = role
        self.request = request
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._taken = False
        self._task = asyncio.create_task(self._pump(router, ctx), name="dialogue-prefetch")

    async def _pump(self, router: ModelRouter, ctx: CallContext) -> None:
        try:
            async for chunk in router.stream_chat(self.role, self.request, ctx):
                self._queue.put_nowait(chunk)
        except Exception as exc:  # AllCandidatesFailed, StreamInterrupted: the response handles them when it reads
            self._queue.put_nowait(exc)
        self._queue.put_nowait(_END)

    def matches(self, role: Role, request: ChatRequest) -> bool:
        return not self._taken and role == self.role and request == self.request

    async def chunks(self) -> AsyncIterator[ChatChunk]:
        """The reply as `router.stream_chat` yields it, from its first chunk; once only."""
        if self._taken:
            raise RuntimeError("a prefetched reply is read once")
        self._taken = True
        while (item := await self._queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, ChatChunk)
            yield item

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
