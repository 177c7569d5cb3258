"""The caller's SDP offer: read from the request (raw SDP or multipart) and checked once, at the edge.

`read_offer` is the route's dependency: what it returns is an SDP offer with live audio and, if any, a session
object of type realtime; nothing behind it checks the request again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from voice.api_errors import ApiError

MAX_SDP_BYTES = 128 * 1024
_SDP_LINE = re.compile(r"^[a-z]=.*$")


@dataclass(frozen=True)
class Offer:
    sdp: str
    session: dict[str, Any] | None  # the multipart `session` part: a patch to the caller's defaults
    model: str | None  # `?model=`


async def read_offer(request: Request) -> Offer:
    """FastAPI dependency: the checked offer of `POST /v1/realtime/calls`, or an ApiError."""
    sdp, session = await _read_body(request)
    check_offer(sdp)
    if session is not None and session.get("type", "realtime") != "realtime":
        raise ApiError(400, "invalid_session", "only sessions of type 'realtime' are served here")
    return Offer(sdp, session, request.query_params.get("model"))


def check_offer(sdp: str) -> None:
    """Refuse what is not an SDP offer with live audio, before aiortc sees it."""
    if not sdp or not sdp.strip():
        raise ApiError(400, "invalid_sdp", "the request carries no SDP offer")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise ApiError(400, "invalid_sdp", f"the SDP offer is larger than {MAX_SDP_BYTES} bytes")
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0].strip() != "v=0":
        raise ApiError(400, "invalid_sdp", "malformed SDP: an offer starts with 'v=0'")
    bad = next((line for line in lines if not _SDP_LINE.match(line.strip())), None)
    if bad is not None:
        raise ApiError(400, "invalid_sdp", f"malformed SDP line: {bad[:80]!r}")
    media = [line.split() for line in lines if line.startswith("m=")]
    if not media:
        raise ApiError(400, "invalid_sdp", "malformed SDP: no media section")
    if not any(m[0] == "m=audio" and len(m) > 1 and m[1] != "0" for m in media):
        raise ApiError(400, "no_audio", "the offer has no audio: add the microphone track (an m=audio section)")


async def _read_body(request: Request) -> tuple[str, dict[str, Any] | None]:
    """The offer SDP and the optional session object: raw application/sdp, or multipart with `sdp` + `session`."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=4, max_fields=8)
        except Exception as exc:  # starlette raises its own parser errors
            raise ApiError(400, "invalid_request", f"could not parse the multipart body: {exc}") from None
        sdp = await _form_text(form.get("sdp"))
        if sdp is None:
            raise ApiError(400, "invalid_sdp", "the multipart body has no 'sdp' part")
        raw_session = await _form_text(form.get("session"))
        session = None
        if raw_session is not None and raw_session.strip() not in ("", "null"):
            try:
                session = json.loads(raw_session)
            except json.JSONDecodeError as exc:
                raise ApiError(400, "invalid_session", f"the 'session' part is not valid JSON: {exc}") from None
            if not isinstance(session, dict):
                raise ApiError(400, "invalid_session", "the 'session' part must be a JSON object")
        return sdp, session
    if ctype in ("application/sdp", "text/plain", ""):
        body = await request.body()
        if len(body) > MAX_SDP_BYTES:
            raise ApiError(400, "invalid_sdp", f"the SDP offer is larger than {MAX_SDP_BYTES} bytes")
        try:
            return body.decode("utf-8"), None
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_sdp", "the SDP offer is not UTF-8 text") from None
    raise ApiError(415, "unsupported_media_type",
                    f"send the offer as application/sdp or multipart/form-data, not {ctype!r}")


async def _form_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, UploadFile):
        data = await value.read(MAX_SDP_BYTES + 1)
        if len(data) > MAX_SDP_BYTES:
            raise ApiError(400, "invalid_sdp", f"a multipart part is larger than {MAX_SDP_BYTES} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_request", "multipart parts must be UTF-8 text") from None
    return str(value)
