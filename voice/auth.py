"""API keys and short-lived client secrets (the browser flow of OpenAI's Realtime API); each caller is one
tenant's (voice/tenants.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request

from voice.api_errors import ApiError
from voice.config import Settings
from voice.keystore import KeyStore
from voice.tenants import ANONYMOUS, DEFAULT_CAPABILITIES, INSPECT, REALTIME, TenantDirectory

MAX_SECRETS = 10000


@dataclass(frozen=True)
class Principal:
    key_id: str  # a non-secret label for logs: "anonymous", "key:<last 4>", "secret:<last 4>"
    session: dict[str, Any] | None = None  # session defaults bound to a client secret
    # The tenant whose calls, sessions, quota and overrides these are: a key's configured tenant, a client
    # secret's minting key's (voice/tenants.py)
    tenant: str = ANONYMOUS
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES  # what it may do (voice/tenants.py)

    @property
    def is_client_secret(self) -> bool:
        return self.key_id.startswith("secret:")

    def require(self, capability: str) -> None:
        """AuthError `missing_capability` unless this caller may do `capability`."""
        if capability not in self.capabilities:
            raise AuthError("missing_capability", f"this key lacks the {capability!r} capability")


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
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES


class Authenticator:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time,
                 tenants: TenantDirectory | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._secrets: dict[str, _Secret] = {}
        self.keys = KeyStore(Path(settings.keys_file) if settings.keys_file else None, clock)
        self.tenants = tenants or TenantDirectory.build(
            settings.api_keys, settings.tenants_file, default_max_calls=settings.max_calls_per_key,
            default_max_sessions=settings.max_sessions_per_tenant, default_retention_days=settings.retention_days)

    def check(self, token: str | None) -> Principal:
        """Who is calling; raise AuthError when the mode demands a key and this one is missing or unknown."""
        if token:
            tenant = self.tenants.tenant_of_key(token)
            if tenant is not None:
                return Principal(f"key:{token[-4:]}", tenant=tenant.id,
                                 capabilities=self.tenants.capabilities_of_key(token))
            managed = self.keys.lookup(token)
            if managed is not None:
                return Principal(f"key:{managed.last4}", tenant=managed.tenant,
                                 capabilities=frozenset(managed.capabilities))
            secret = self._secrets.get(token)
            if secret is not None:
                if secret.expires_at >= self._clock():
                    return Principal(f"secret:{token[-4:]}", secret.session, tenant=secret.tenant,
                                     capabilities=secret.capabilities)
                del self._secrets[token]
                raise AuthError("client_secret_expired", "the client secret has expired; request a new one")
            if self._settings.requires_key or self.tenants.has_keys or self.keys.list():
                raise AuthError("invalid_api_key", "the API key is not known to this server")
            return self._anonymous()
        if self._settings.requires_key:
            mode = self._settings.deployment_mode
            raise AuthError("missing_api_key", f"an API key is required in {mode} mode (Authorization: Bearer <key>)")
        return self._anonymous()

    @staticmethod
    def _anonymous() -> Principal:
        """Developer-light without a key: the machine's own user, who may do everything."""
        return Principal("anonymous", capabilities=frozenset({REALTIME, INSPECT}))

    def admin_actor(self, token: str, capability: str) -> str | None:
        """The actor an API key is on the router's admin API, where it carries that admin capability (the router
        asks through `AdminKeys.delegate`); never the keyless caller, never a client secret."""
        try:
            principal = self.check(token)
        except AuthError:
            return None
        if principal.key_id == ANONYMOUS or principal.is_client_secret or capability not in principal.capabilities:
            return None
        return f"{principal.key_id}@{principal.tenant}"

    def issue_secret(self, owner: Principal, ttl_s: int, session: dict[str, Any] | None) -> tuple[str, int]:
        now = self._clock()
        self._secrets = {k: v for k, v in self._secrets.items() if v.expires_at >= now}
        if len(self._secrets) >= MAX_SECRETS:
            raise AuthError("too_many_secrets", "too many live client secrets; try again later")
        value = "ek_" + secrets.token_urlsafe(24)
        expires_at = int(now + ttl_s)
        # a browser's credential: talk, if its minter may, and nothing else
        self._secrets[value] = _Secret(expires_at, session, owner.tenant, owner.capabilities & {REALTIME})
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


def requires(capability: str) -> Callable[[Request], Any]:
    """FastAPI dependency: the caller, who must hold `capability` (403 `missing_capability` otherwise)."""
    async def dependency(request: Request) -> Principal:
        principal = await authenticated(request)
        try:
            principal.require(capability)
        except AuthError as exc:
            raise ApiError(403, exc.code, exc.message) from None
        return principal
    return dependency
