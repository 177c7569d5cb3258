"""The call endpoints: `POST /v1/realtime/calls`, the call's readout and hang-up, and the page's ICE settings."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from voice.auth import AuthError, Principal, bearer
from voice.config import Settings
from voice.server import VoiceServer
from voice.transports.webrtc.call import EVENTS_CHANNEL
from voice.transports.webrtc.errors import CallError, error_response
from voice.transports.webrtc.ice import parse_ice_servers
from voice.transports.webrtc.offer import read_offer
from voice.transports.webrtc.registry import CallRegistry, registry_for


def webrtc_routes(settings: Settings | None = None) -> APIRouter:
    """The call endpoints; raises ValueError at start-up when SOMAGENT_ICE_SERVERS is malformed."""
    ice_servers = parse_ice_servers((settings or Settings()).ice_servers)
    api = APIRouter()

    def _registry(request: Request) -> CallRegistry:
        return registry_for(request.app, ice_servers)

    def _auth(request: Request) -> Principal:
        server: VoiceServer = request.app.state.server
        try:
            return server.auth.check(bearer(request.headers))
        except AuthError as exc:
            raise CallError(401, exc.code, exc.message) from None

    @api.post("/v1/realtime/calls", status_code=201)
    async def create_call(request: Request) -> Response:
        try:
            principal = _auth(request)
            sdp, session = await read_offer(request)
            call, answer = await _registry(request).create(principal, sdp, session, request.query_params.get("model"))
        except CallError as exc:
            return exc.response()
        return Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": f"/v1/realtime/calls/{call.id}"})

    @api.get("/v1/realtime/webrtc_config")
    async def webrtc_config(request: Request) -> Response:
        try:
            _auth(request)
        except CallError as exc:
            return exc.response()
        return JSONResponse({"ice_servers": ice_servers, "events_channel": EVENTS_CHANNEL})

    @api.get("/v1/realtime/calls/{call_id}")
    async def get_call(call_id: str, request: Request) -> Response:
        try:
            _auth(request)
        except CallError as exc:
            return exc.response()
        call = _registry(request).calls.get(call_id)
        if call is None:
            return error_response(404, "call_not_found", f"no live call {call_id!r}")
        return JSONResponse(call.info())

    async def _hangup(call_id: str, request: Request) -> Response:
        try:
            _auth(request)
        except CallError as exc:
            return exc.response()
        call = _registry(request).calls.get(call_id)
        if call is None:
            return error_response(404, "call_not_found", f"no live call {call_id!r}")
        await call.close("hangup")
        return Response(status_code=200)

    api.add_api_route("/v1/realtime/calls/{call_id}/hangup", _hangup, methods=["POST"])
    api.add_api_route("/v1/realtime/calls/{call_id}", _hangup, methods=["DELETE"])
    return api
