"""The FastAPI application: health, the Realtime WebSocket, client secrets, and the web page."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

import dsp
from router import ModelRouter
from router.admin.api import build_admin_router
from router.capsules import Benchmarks
from router.capsules.api import benchmark_routes
from router.defaults import build_default_router
from voice.api_errors import EXCEPTION_HANDLERS, ApiError
from voice.auth import AuthError, Principal, requires
from voice.config import ModelSettings, Settings
from voice.inspect_api import inspect_routes
from voice.internal_api import (
    SharedSecret,
    WorkerHeader,
    internal_routes,
    local_health,
    server_health,
    server_metrics,
    share_secret,
)
from voice.keys_api import keys_routes
from voice.server import VoiceServer
from voice.server_metrics import CONTENT_TYPE
from voice.siblings import Siblings
from voice.tenants import REALTIME
from voice.transports.webrtc.registry import close_calls
from voice.transports.webrtc.routes import webrtc_routes
from voice.transports.websocket import realtime_websocket

log = logging.getLogger(__name__)

WEB_CLIENT = Path(__file__).resolve().parent.parent / "web_client"


class ExpiresAfter(BaseModel):
    anchor: str = "created_at"
    seconds: int = Field(600, ge=10, le=7200)


class ClientSecretRequest(BaseModel):
    expires_after: ExpiresAfter | None = None
    session: dict[str, Any] | None = None


def create_app(settings: Settings | None = None, router: ModelRouter | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    if router is None:
        models = settings.models or ModelSettings.from_env()
        router = build_default_router(models.llm, settings=models.router, whisper=models.whisper, local=models.local)
    model_router = router

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        server = VoiceServer(settings, model_router)
        app.state.server = server
        # Always start the router (store, migrations, its tasks); warm-up only decides the speech engines.
        if settings.warmup:  # compile (or load cached) numba kernels now, not on the first live turn
            app.state.dsp_warmup_s = await asyncio.to_thread(dsp.warmup)
            log.info("dsp kernels ready in %.2f s", app.state.dsp_warmup_s)
        owns_start = not model_router.started
        await model_router.start(warm_speech=settings.warmup)
        # Everything loaded so far (models, numba, the router) lives as long as the process: take it out of the
        # cyclic collector's sight, so a full collection scans what sessions allocate, not ~1e6 start-up objects
        # (a full pass over those stalled the loop for ~300 ms).
        gc.collect()
        gc.freeze()
        # capsules (shipped and stored), the measured quality of earlier runs; the schedule in one worker only
        await benchmarks.start(schedule=settings.worker is None or settings.worker.index == 0)
        await server.start()  # load sampling starts once start-up's own work is done
        if settings.worker is not None:
            app.state.siblings = Siblings(settings.worker)
        try:
            yield
        finally:
            if settings.worker is not None:
                await app.state.siblings.aclose()
            gc.unfreeze()  # an app in a process that outlives it (tests) hands its objects back to the collector
            await close_calls(app)  # WebRTC: end the calls, close their peer connections
            await server.aclose()
            await benchmarks.aclose()
            if router is None or owns_start:
                await model_router.aclose()

    app = FastAPI(title="SomaGent Voice", version="0.1.0", lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS,
                  description="Real-time voice conversations over the OpenAI Realtime protocol.")
    app.include_router(build_admin_router(model_router))
    benchmarks = Benchmarks(model_router)
    app.state.benchmarks = benchmarks
    app.include_router(benchmark_routes(model_router, benchmarks))  # capsules, runs, gates, reports

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        """Always 200 while the process serves; `ready` says whether a new session would be admitted (by the
        worker that answers; `workers` lists each worker of `serve --workers N`)."""
        return await server_health(request.app)

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """For load balancers that read status codes: 503 while new sessions would be refused."""
        health = local_health(request.app)
        return JSONResponse(health, status_code=200 if health["ready"] else 503,
                            headers=None if health["ready"] else {"Retry-After": str(settings.capacity.retry_after_s)})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return Response(await server_metrics(request.app), media_type=CONTENT_TYPE)

    @app.post("/v1/realtime/client_secrets")
    async def client_secrets(request: Request, principal: Annotated[Principal, Depends(requires(REALTIME))],
                             body: ClientSecretRequest | None = None) -> JSONResponse:
        server: VoiceServer = request.app.state.server
        if principal.is_client_secret:
            raise ApiError(401, "invalid_api_key", "a client secret cannot mint further secrets")
        body = body or ClientSecretRequest()
        try:
            session = server.session_config(body.session)
            ttl = (body.expires_after or ExpiresAfter(seconds=settings.client_secret_ttl_s)).seconds
        except ValueError as exc:
            raise ApiError(400, "invalid_session", str(exc)) from None
        try:
            value, expires_at = server.auth.issue_secret(principal, ttl, body.session)
        except AuthError as exc:
            raise ApiError(401, exc.code, exc.message) from None
        await share_secret(request.app, SharedSecret(value=value, expires_at=expires_at, session=body.session,
                                                     tenant=principal.tenant))
        wire = session.wire()
        wire["expires_at"] = expires_at
        return JSONResponse({"value": value, "expires_at": expires_at, "session": wire})

    @app.websocket("/v1/realtime")
    async def realtime(ws: WebSocket) -> None:
        await realtime_websocket(ws, ws.app.state.server)

    if settings.worker is not None:
        app.include_router(internal_routes(settings.worker))
        app.add_middleware(WorkerHeader, index=settings.worker.index)
    app.include_router(webrtc_routes(settings))  # POST /v1/realtime/calls and friends (voice/transports/webrtc/)
    app.include_router(inspect_routes())  # a tenant's stored audio vectors, for `conversation:inspect`
    app.include_router(keys_routes())  # operators make, list, rotate and revoke API keys

    @app.get("/", include_in_schema=False)
    async def index():
        page = WEB_CLIENT / "index.html"
        if page.exists():
            return FileResponse(page)
        return JSONResponse({"service": "somagent-voice", "realtime": "/v1/realtime", "docs": "/docs"})

    if WEB_CLIENT.is_dir():  # the page's scripts and styles
        app.mount("/static", StaticFiles(directory=WEB_CLIENT), name="static")

    return app


def warn_if_exposed(host: str, settings: Settings) -> None:
    """Developer-light accepts calls without a key: say so loudly when that reaches beyond this machine."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not settings.requires_key:
        log.warning("serving on %s in developer-light mode: calls without an API key are accepted. "
                    "Set SOMAGENT_DEPLOYMENT_MODE=production and SOMAGENT_API_KEYS for anything but local use.", host)
