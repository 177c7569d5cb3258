"""The call endpoints: `POST /v1/realtime/calls`, the call's readout and hang-up, and the page's ICE settings.

Every route needs a caller (`authenticated`, a router dependency) and a call's offer is checked by its own
dependency (`read_offer`); what refuses a request raises ApiError, which the app's handler writes
(voice/api_errors.py).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from voice.auth import Principal, requires
from voice.config import Settings
from voice.internal_api import forward
from voice.siblings import call_owner
from voice.tenants import REALTIME
from voice.transports.webrtc.call import EVENTS_CHANNEL
from voice.transports.webrtc.ice import parse_ice_servers
from voice.transports.webrtc.offer import Offer, read_offer
from voice.transports.webrtc.registry import CallRegistry, registry_for


def webrtc_routes(settings: Settings | None = None) -> APIRouter:
    """The call endpoints; raises ValueError at start-up when SOMAGENT_ICE_SERVERS is malformed."""
    ice_servers = parse_ice_servers((settings or Settings()).ice_servers)
    talker = requires(REALTIME)  # one dependency, so FastAPI runs the check once per request
    api = APIRouter(dependencies=[Depends(talker)])

    async def _registry(request: Request) -> CallRegistry:
        return registry_for(request.app, ice_servers)

    Caller = Annotated[Principal, Depends(talker)]  # the router's own check, cached: it runs once
    Calls = Annotated[CallRegistry, Depends(_registry)]

    @api.post("/v1/realtime/calls", status_code=201)
    async def create_call(principal: Caller, calls: Calls, offer: Annotated[Offer, Depends(read_offer)]) -> Response:
        call, answer = await calls.create(principal, offer)
        return Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": f"/v1/realtime/calls/{call.id}"})

    @api.get("/v1/realtime/webrtc_config")
    async def webrtc_config() -> JSONResponse:
        return JSONResponse({"ice_servers": ice_servers, "events_channel": EVENTS_CHANNEL})

    def elsewhere(call_id: str) -> int | None:
        """The worker of `serve --workers N` holding the call, when it is not this one."""
        owner = call_owner(call_id)
        me = settings.worker if settings is not None else None
        return owner if me is not None and owner is not None and owner != me.index else None

    @api.get("/v1/realtime/calls/{call_id}")
    async def get_call(call_id: str, principal: Caller, calls: Calls, request: Request) -> Response:
        if (owner := elsewhere(call_id)) is not None:
            return await forward(request, owner)  # that worker checks the caller's tenant
        return JSONResponse(calls.get(call_id, principal).info())

    async def hangup(call_id: str, principal: Caller, calls: Calls, request: Request) -> Response:
        if (owner := elsewhere(call_id)) is not None:
            return await forward(request, owner)
        await calls.get(call_id, principal).close("hangup")
        return Response(status_code=200)

    api.add_api_route("/v1/realtime/calls/{call_id}/hangup", hangup, methods=["POST"])
    api.add_api_route("/v1/realtime/calls/{call_id}", hangup, methods=["DELETE"])
    return api
