"""API keys and short-lived client secrets (the browser flow of OpenAI's Realtime API)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from voice.api_errors import ApiError
from voice.config import Settings

MAX_SECRETS = 10000


@dataclass(frozen=True)
class Principal:
    key_id: str  # a non-secret label: "anonymous", "key:<last 4>", "secret:<last 4>"
    session: dict[str, Any] | None = None  # session defaults bound to a client secret
    # Whose calls these are, for attaching a sideband to one: an API key's fingerprint (two keys may share their
    # last 4 characters), a client secret's minting key's; by default the label itself ("anonymous").
    owner: str = ""

    def __post_init__(self) -> None:
        if not self.owner:
            object.__setattr__(self, "owner", self.key_id)

    @property
    def is_client_secret(self) -> bool:
        return self.key_id.startswith("secret:")


def key_fingerprint(token: str) -> str:
    """An API key's owner id: stable, distinct per key, and not the key (it may reach other workers)."""
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:32]


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Secret:
    expires_at: float
    session: dict[str, Any] | None
    owner: str


class Authenticator:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._secrets: dict[str, _Secret] = {}

    def check(self, token: str | None) -> Principal:
        """Who is calling; raise AuthError when the mode demands a key and this one is missing or unknown."""
        if token:
            if token in self._settings.api_keys:
                return Principal(f"key:{token[-4:]}", owner=key_fingerprint(token))
            secret = self._secrets.get(token)
            if secret is not None:
                if secret.expires_at >= self._clock():
                    return Principal(f"secret:{token[-4:]}", secret.session, owner=secret.owner)
                del self._secrets[token]
                raise AuthError("client_secret_expired", "the client secret has expired; request a new one")
            if self._settings.requires_key or self._settings.api_keys:
                raise AuthError("invalid_api_key", "the API key is not known to this server")
            return Principal("anonymous")
        if self._settings.requires_key:
            mode = self._settings.deployment_mode
            raise AuthError("missing_api_key", f"an API key is required in {mode} mode (Authorization: Bearer <key>)")
        return Principal("anonymous")

    def issue_secret(self, owner: Principal, ttl_s: int, session: dict[str, Any] | None) -> tuple[str, int]:
        now = self._clock()
        self._secrets = {k: v for k, v in self._secrets.items() if v.expires_at >= now}
        if len(self._secrets) >= MAX_SECRETS:
            raise AuthError("too_many_secrets", "too many live client secrets; try again later")
        value = "ek_" + secrets.token_urlsafe(24)
        expires_at = int(now + ttl_s)
        self._secrets[value] = _Secret(expires_at, session, owner.owner)
        return value, expires_at

    def adopt_secret(self, value: str, expires_at: float, session: dict[str, Any] | None, owner: str) -> None:
        """A secret another worker of this server issued (voice/siblings.py), accepted here from now on."""
        self._secrets[value] = _Secret(expires_at, session, owner)


def bearer(headers: Any, subprotocols: list[str] | None = None) -> str | None:
    """The key from `Authorization: Bearer`, or from the browser's `openai-insecure-api-key.<key>` subprotocol."""
    auth = headers.get("authorization") if headers is not None else None
    if auth and auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    for proto in subprotocols or []:
        if proto.startswith("openai-insecure-api-key."):
            return proto.split(".", 1)[1] or None
    return None


async def authenticated(request: Request) -> Principal:
    """FastAPI dependency: who calls an HTTP route, or a 401 ApiError (async, so the check runs on the loop)."""
    try:
        return request.app.state.server.auth.check(bearer(request.headers))
    except AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from None
