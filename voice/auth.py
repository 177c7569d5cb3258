"""API keys and short-lived client secrets (the browser flow of OpenAI's Realtime API); each caller is one
tenant's (voice/tenants.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from voice.api_errors import ApiError
from voice.config import Settings
from voice.tenants import ANONYMOUS, TenantDirectory

MAX_SECRETS = 10000


@dataclass(frozen=True)
class Principal:
    key_id: str  # a non-secret label for logs: "anonymous", "key:<last 4>", "secret:<last 4>"
    session: dict[str, Any] | None = None  # session defaults bound to a client secret
    # The tenant whose calls, sessions, quota and overrides these are: a key's configured tenant, a client
    # secret's minting key's (voice/tenants.py)
    tenant: str = ANONYMOUS

    @property
    def is_client_secret(self) -> bool:
        return self.key_id.startswith("secret:")


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Secret:
    expires_at: float
    session: dict[str, Any] | None
    tenant: str


class Authenticator:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time,
                 tenants: TenantDirectory | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._secrets: dict[str, _Secret] = {}
        self.tenants = tenants or TenantDirectory.build(
            settings.api_keys, settings.tenants_file, default_max_calls=settings.max_calls_per_key,
            default_max_sessions=settings.max_sessions_per_tenant)

    def check(self, token: str | None) -> Principal:
        """Who is calling; raise AuthError when the mode demands a key and this one is missing or unknown."""
        if token:
            tenant = self.tenants.tenant_of_key(token)
            if tenant is not None:
                return Principal(f"key:{token[-4:]}", tenant=tenant.id)
            secret = self._secrets.get(token)
            if secret is not None:
                if secret.expires_at >= self._clock():
                    return Principal(f"secret:{token[-4:]}", secret.session, tenant=secret.tenant)
                del self._secrets[token]
                raise AuthError("client_secret_expired", "the client secret has expired; request a new one")
            if self._settings.requires_key or self.tenants.has_keys:
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
        self._secrets[value] = _Secret(expires_at, session, owner.tenant)
        return value, expires_at

    def adopt_secret(self, value: str, expires_at: float, session: dict[str, Any] | None, tenant: str) -> None:
        """A secret another worker of this server issued (voice/siblings.py), accepted here from now on."""
        self._secrets[value] = _Secret(expires_at, session, tenant)


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
