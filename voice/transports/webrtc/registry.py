"""All live calls of one app: created from an offer, counted per key, ended at shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI

from voice.api_errors import ApiError
from voice.auth import AuthError, Principal
from voice.server import ServerBusy, TenantLimit, VoiceServer
from voice.session_config import merge
from voice.transports.webrtc.call import Call
from voice.transports.webrtc.offer import Offer
from voice.transports.webrtc.track import OUTPUT_FORMAT


class CallRegistry:
    """The live calls by id: the per-key limit counts them, shutdown ends them."""

    def __init__(self, server: VoiceServer, ice_servers: list[dict[str, Any]]) -> None:
        self.server = server
        self.ice_servers = ice_servers
        self.calls: dict[str, Call] = {}

    def get(self, call_id: str, principal: Principal) -> Call:
        """The caller's tenant's live call, or a 404: another tenant's call is not found, the same as no call."""
        call = self.calls.get(call_id)
        if call is None or call.principal.tenant != principal.tenant:
            raise ApiError(404, "call_not_found", f"no live call {call_id[:64]!r}")
        return call

    def count_for(self, tenant: str) -> int:
        return sum(1 for c in self.calls.values() if c.principal.tenant == tenant)

    async def create(self, principal: Principal, offer: Offer) -> tuple[Call, str]:
        """A new call and its SDP answer; the offer was checked at the edge (`read_offer`). The tenant's call
        limit counts its keys' calls and those of the client secrets they minted alike."""
        limit = self.server.auth.tenants.get(principal.tenant).max_calls
        if limit and self.count_for(principal.tenant) >= limit:
            raise ApiError(
                429, "too_many_calls", f"this tenant already has {limit} live calls (its limit); hang one up first"
            )
        wanted = merge(principal.session or {}, dict(offer.session or {}))
        pinned = {"audio": {"output": {"format": dict(OUTPUT_FORMAT)}}}  # the voice always travels on the track
        wanted = merge(wanted, pinned)
        model = offer.model or (wanted.pop("model", None) if isinstance(wanted.get("model"), str) else None)
        wanted.pop("type", None)
        try:
            session = await self.server.open_session(principal, model=model, patch=wanted, transport="webrtc")
        except ServerBusy as exc:
            raise ApiError(503, exc.code, exc.message, {"Retry-After": str(exc.retry_after_s)}) from None
        except TenantLimit as exc:
            raise ApiError(429, exc.code, exc.message) from None
        except AuthError as exc:
            status = 400 if exc.code == "invalid_session" else 503
            raise ApiError(status, exc.code, exc.message) from None
        session.pin_config(pinned)
        worker = self.server.settings.worker  # its index in the id: any worker can forward to this one
        call = Call(principal, session, ice_servers=self.ice_servers, on_closed=self._closed,
                    id_prefix=worker.call_id_prefix() if worker is not None else "rtc_")
        session.flush_playback = call.track.flush
        session.turns.server_truncation = True  # the track knows what played: a barge-in cuts the item to it
        self.calls[call.id] = call  # counts against the key's limit from now on
        try:
            answer = await call.answer(offer.sdp)
        except BaseException:
            await call.close("setup_failed")
            raise
        return call, answer

    async def _closed(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        await self.server.close_session(call.session)

    async def aclose(self) -> None:
        calls = list(self.calls.values())
        await asyncio.gather(*(c.close("server_shutdown") for c in calls), return_exceptions=True)


def registry_for(app: FastAPI, ice_servers: list[dict[str, Any]] | None = None) -> CallRegistry:
    """The app's calls (`app.state.webrtc_calls`), made on first use."""
    registry = getattr(app.state, "webrtc_calls", None)
    if registry is None:
        registry = CallRegistry(app.state.server, ice_servers or [])
        app.state.webrtc_calls = registry
    return registry


async def close_calls(app: FastAPI) -> None:
    """App shutdown: end every call and close its peer connection."""
    registry = getattr(app.state, "webrtc_calls", None)
    if registry is not None:
        await registry.aclose()
