"""ICE servers: `SOMAGENT_ICE_SERVERS` read once at start-up, and the peer connections' configuration from it."""

from __future__ import annotations

import json
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer


def parse_ice_servers(text: str) -> list[dict[str, Any]]:
    """`SOMAGENT_ICE_SERVERS`: a JSON list (URLs or {urls, username, credential}) or comma-separated URLs."""
    text = (text or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"SOMAGENT_ICE_SERVERS is not valid JSON: {exc}") from None
    else:
        raw = [u.strip() for u in text.split(",") if u.strip()]
    servers = []
    for entry in raw:
        server = {"urls": entry} if isinstance(entry, str) else entry
        if not isinstance(server, dict) or "urls" not in server:
            raise ValueError(f"SOMAGENT_ICE_SERVERS entry {entry!r} needs 'urls'")
        urls = server["urls"] if isinstance(server["urls"], list) else [server["urls"]]
        for url in urls:
            if not isinstance(url, str) or not url.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"SOMAGENT_ICE_SERVERS: {url!r} is not a stun:, turn: or turns: URL")
        servers.append({k: v for k, v in server.items() if k in ("urls", "username", "credential")})
    return servers


def rtc_configuration(servers: list[dict[str, Any]]) -> RTCConfiguration:
    # An explicit list, even empty: aiortc falls back to a public STUN server when given None.
    return RTCConfiguration(iceServers=[RTCIceServer(**s) for s in servers])
