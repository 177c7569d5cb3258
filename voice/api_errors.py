"""How an HTTP request is refused: `ApiError`, raised anywhere below a route, written by one exception handler.

Routes and what they call raise instead of building error responses, so every refusal has OpenAI's shape,
`{"error": {"type", "code", "message"}}`, with its status and headers (Retry-After on server_busy). WebSocket
refusals are error events on the socket instead (voice/transports/websocket.py): no HTTP handler sees them.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse


class ApiError(Exception):
    """A refusal with its HTTP status; `headers` travel with it (Retry-After for server_busy)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.type = status, code, message, headers, type_


async def api_error_response(request: Request, exc: ApiError) -> JSONResponse:
    """The app's handler for ApiError (async: starlette would run a plain function in a thread)."""
    return JSONResponse({"error": {"type": exc.type, "code": exc.code, "message": exc.message}},
                        status_code=exc.status, headers=exc.headers)


EXCEPTION_HANDLERS = {ApiError: api_error_response}  # for FastAPI(exception_handlers=...)
