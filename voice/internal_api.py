"""What the workers of `serve --workers N` ask each other over their Unix sockets (voice/siblings.py).

`/_internal/*` answers only requests carrying the server's shared token (anything else gets a 404, as if the
routes did not exist; a WebSocket handshake, a 403). The public side uses it in four places: `/healthz` lists
every worker, `/metrics` merges their expositions, a call's requests are forwarded to the worker that holds the
call, and so is a call's sideband WebSocket (`/v1/realtime?call_id=`), relayed frame for frame.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import urlencode

import httpx
import websockets
from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

from adapters.aio import TaskSet
from voice.api_errors import ApiError
from voice.auth import AuthError, bearer
from voice.server_metrics import CONTENT_TYPE, merge_workers
from voice.siblings import INTERNAL_HEADER, Siblings, WorkerIdentity
from voice.transports.refusal import INTERNAL_ERROR, NORMAL, POLICY_VIOLATION, TRY_AGAIN_LATER, close, refuse
from voice.transports.webrtc.sideband import serve_sideband

FORWARDED_HEADERS = ("authorization", "content-type", "accept")


class SharedSecret(BaseModel):
    value: str
    expires_at: float
    session: dict[str, Any] | None = None
    tenant: str  # the minting key's tenant: the secret's calls count against it


def local_health(app: FastAPI) -> dict[str, Any]:
    body = app.state.server.health()
    me: WorkerIdentity | None = app.state.server.settings.worker
    if me is not None:
        body["worker"] = me.index
        body["pid"] = os.getpid()
    return body


def local_metrics(app: FastAPI) -> bytes:
    server = app.state.server
    registry = getattr(app.state, "webrtc_calls", None)
    return server.metrics.render(sessions=len(server.sessions), calls=len(registry.calls) if registry else 0,
                                 loop_busy=server.capacity.loop_busy(), backlog=server.router.speech_backlog())


def siblings_of(app: FastAPI) -> Siblings | None:
    return getattr(app.state, "siblings", None)


async def server_health(app: FastAPI) -> dict[str, Any]:
    """This worker's health; with siblings, also `workers`: each worker's own (or why it did not answer)."""
    body = local_health(app)
    siblings = siblings_of(app)
    if siblings is None:
        return body
    workers = [{k: v for k, v in body.items() if k != "workers"}]
    for index, result in (await siblings.each("GET", "/_internal/health")).items():
        if isinstance(result, Exception) or result.status_code != 200:
            workers.append({"worker": index, "status": "unreachable", "ready": False, "message": str(result)})
        else:
            workers.append(result.json())
    body["workers"] = sorted(workers, key=lambda w: w["worker"])
    return body


async def server_metrics(app: FastAPI) -> bytes:
    siblings = siblings_of(app)
    if siblings is None:
        return local_metrics(app)
    texts = {siblings.me.index: local_metrics(app).decode()}
    for index, result in (await siblings.each("GET", "/_internal/metrics")).items():
        if not isinstance(result, Exception) and result.status_code == 200:
            texts[index] = result.text
    return merge_workers(texts)


async def share_secret(app: FastAPI, secret: SharedSecret) -> None:
    """Hand a client secret this worker issued to the others, before the client can use it anywhere."""
    siblings = siblings_of(app)
    if siblings is None:
        return
    for index, result in (await siblings.each("POST", "/_internal/secrets", json=secret.model_dump())).items():
        if isinstance(result, Exception) or result.status_code != 204:
            raise ApiError(503, "worker_unavailable", f"worker {index} did not take the new client secret; try again",
                           {"Retry-After": "1"})


async def forward(request: Request, owner: int) -> Response:
    """The same request, answered by worker `owner` (which holds the call it names)."""
    siblings = siblings_of(request.app)
    if siblings is None or owner not in siblings.others:
        raise ApiError(404, "call_not_found", f"no live call {request.path_params.get('call_id')!r}")
    headers = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS}
    try:
        r = await siblings.request(owner, request.method, request.url.path, headers=headers,
                                   content=await request.body())
    except httpx.HTTPError:
        raise ApiError(503, "worker_unavailable", f"the worker holding this call ({owner}) is not answering",
                       {"Retry-After": "1"}) from None
    media = r.headers.get("content-type")
    return Response(r.content, status_code=r.status_code, media_type=media)


async def forward_sideband(ws: WebSocket, owner: int, token: str | None, call_id: str) -> None:
    """The sideband of a call worker `owner` holds, on a WebSocket this worker accepted: relayed frame for frame
    to that worker's own sideband, which checks the key and the call's owner. Its close (the call ended, the
    sideband fell behind, a refusal) is passed on, code and reason; the client leaving closes the relay."""
    siblings = siblings_of(ws.app)
    if siblings is None or owner not in siblings.others:
        await refuse(ws, "call_not_found", f"no live call {call_id[:64]!r}", POLICY_VIOLATION)
        return
    headers = {INTERNAL_HEADER: siblings.me.token, **({"authorization": f"Bearer {token}"} if token else {})}
    try:
        upstream = await websockets.unix_connect(
            siblings.me.socket_path(owner), "ws://worker/_internal/realtime?" + urlencode({"call_id": call_id}),
            additional_headers=headers, max_size=None, compression=None, ping_interval=None, open_timeout=5)
    except (OSError, TimeoutError, websockets.InvalidHandshake):
        await refuse(ws, "worker_unavailable", f"the worker holding this call ({owner}) is not answering; try again",
                     TRY_AGAIN_LATER, type_="server_error")
        return
    tasks = TaskSet()
    try:
        relays = (tasks.create_task(_client_to_worker(ws, upstream), name=f"sideband-{call_id}-up"),
                  tasks.create_task(_worker_to_client(upstream, ws), name=f"sideband-{call_id}-down"))
        await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await tasks.aclose()
        code, reason = upstream.close_code, upstream.close_reason or ""
        await upstream.close()
    if code is None:  # the client left; the owner's sideband ends, the call goes on
        return
    if code == 1006:  # the owning worker went away without a close
        code, reason = INTERNAL_ERROR, f"worker_unavailable: the worker holding this call ({owner}) went away"
    await close(ws, NORMAL if code == 1005 else code, reason)


async def _client_to_worker(ws: WebSocket, upstream: Any) -> None:
    try:
        while (message := await ws.receive())["type"] != "websocket.disconnect":
            data = message.get("text") if message.get("text") is not None else message.get("bytes")
            if data is not None:
                await upstream.send(data)
    except (WebSocketDisconnect, RuntimeError, websockets.ConnectionClosed):
        pass


async def _worker_to_client(upstream: Any, ws: WebSocket) -> None:
    try:
        async for message in upstream:  # ends when the owner closes
            if isinstance(message, str):
                await ws.send_text(message)
            else:
                await ws.send_bytes(message)
    except (WebSocketDisconnect, RuntimeError, OSError, websockets.ConnectionClosed):
        pass


class WorkerHeader:
    """ASGI middleware: every HTTP response and WebSocket handshake says which worker answered
    (`x-somagent-worker`), for operators following a request, and for tests that must see each worker answer."""

    def __init__(self, app: Any, index: int) -> None:
        self.app = app
        self._header = (b"x-somagent-worker", str(index).encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Any) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"] = [*message.get("headers", []), self._header]
            await send(message)

        await self.app(scope, receive, send_with_header)


def internal_routes(me: WorkerIdentity) -> APIRouter:
    async def internal_only(request: Request) -> None:
        if not me.is_internal(request.headers):
            raise ApiError(404, "not_found", "Not Found")

    api = APIRouter(prefix="/_internal", dependencies=[Depends(internal_only)], include_in_schema=False)

    @api.get("/health")
    async def health(request: Request) -> JSONResponse:
        return JSONResponse(local_health(request.app))

    @api.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(local_metrics(request.app), media_type=CONTENT_TYPE)

    @api.post("/secrets", status_code=204)
    async def secrets(request: Request, secret: SharedSecret) -> Response:
        request.app.state.server.auth.adopt_secret(secret.value, secret.expires_at, secret.session, secret.tenant)
        return Response(status_code=204)

    async def sideband(ws: WebSocket) -> None:
        """A sideband another worker accepted for a call of this one (`forward_sideband`)."""
        if not me.is_internal(ws.headers):
            await ws.close(code=POLICY_VIOLATION)  # before accepting: the handshake is refused, as for no route
            return
        await ws.accept()
        try:
            principal = ws.app.state.server.auth.check(bearer(ws.headers))
        except AuthError as exc:
            await refuse(ws, exc.code, exc.message, POLICY_VIOLATION)
            return
        await serve_sideband(ws, principal, ws.query_params.get("call_id", ""))

    routes = APIRouter(include_in_schema=False)
    routes.include_router(api)
    routes.add_api_websocket_route("/_internal/realtime", sideband)  # outside `api`: its guard reads HTTP requests
    return routes
