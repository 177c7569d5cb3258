"""The error a call request is refused with, as the JSON body OpenAI's API uses."""

from __future__ import annotations

from fastapi.responses import JSONResponse


class CallError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def response(self) -> JSONResponse:
        response = error_response(self.status, self.code, self.message)
        response.headers.update(self.headers or {})
        return response


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": "invalid_request_error", "code": code, "message": message}},
                        status_code=status)
