"""Key management for operators: `/v1/admin/keys`, behind the router's admin keys (as `/v1/router/*`).

- `POST /v1/admin/keys` `{"tenant", "capabilities", "name"}`: a new key; its secret is in this answer only;
- `GET /v1/admin/keys?tenant=`: the keys, without secrets or hashes (id, tenant, capabilities, name, last four
  characters, when made, rotated, revoked);
- `POST /v1/admin/keys/{id}/rotate`: a new secret for the same key; the old one stops working at once;
- `DELETE /v1/admin/keys/{id}`: revoked, at once.

Each change writes an audit entry (actor, key id, tenant, capabilities; never the secret nor its hash).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from voice.api_errors import ApiError
from voice.auth import bearer
from voice.keystore import KeyStore
from voice.tenants import DEFAULT_CAPABILITIES


async def admin_actor(request: Request) -> str:
    """The operator calling, by the router's admin keys (the same as `/v1/router/*` take)."""
    key = bearer(request.headers) or request.headers.get("x-admin-key")
    keys = request.app.state.server.router.admin_keys
    if not key:
        raise ApiError(401, "missing_admin_key", "an admin key is required: 'Authorization: Bearer <key>'")
    if not keys.configured:
        raise ApiError(403, "no_admin_key", "no admin key is configured on this server; set SOMAGENT_ADMIN_KEY")
    name = keys.verify(key)  # an admin key: keys are no tenant's to make, whatever a tenant key may carry
    if name is None:
        raise ApiError(403, "invalid_admin_key", "the admin key is not known to this server")
    if request.method == "GET":  # reads are audited, as the router's admin reads are
        await request.app.state.server.router.admin.record(name, "admin.read", request.url.path,
                                                          {"tenant": request.query_params.get("tenant")})
    return name


Operator = Annotated[str, Depends(admin_actor)]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(min_length=1, max_length=64)
    capabilities: list[str] = Field(default_factory=lambda: sorted(DEFAULT_CAPABILITIES), max_length=10)
    name: str = Field("", max_length=100)


def _store(request: Request) -> KeyStore:
    return request.app.state.server.auth.keys


async def _audit(request: Request, actor: str, action: str, key: Any) -> None:
    await request.app.state.server.router.admin.record(
        actor, action, f"key:{key.id}", {"tenant": key.tenant, "capabilities": list(key.capabilities)})


def keys_routes() -> APIRouter:
    api = APIRouter()

    @api.post("/v1/admin/keys", status_code=201)
    async def create(body: NewKey, actor: Operator, request: Request) -> dict[str, Any]:
        try:
            key, secret = _store(request).create(body.tenant, body.capabilities, body.name)
        except ValueError as exc:
            raise ApiError(422, "invalid_key_request", str(exc)) from None
        await _audit(request, actor, "key.create", key)
        return {**key.public(), "key": secret}

    @api.get("/v1/admin/keys")
    async def listing(actor: Operator, request: Request, tenant: str | None = None) -> dict[str, Any]:
        return {"keys": [k.public() for k in _store(request).list(tenant)]}

    @api.post("/v1/admin/keys/{key_id}/rotate")
    async def rotate(key_id: str, actor: Operator, request: Request) -> dict[str, Any]:
        done = _store(request).rotate(key_id)
        if done is None:
            raise ApiError(404, "key_not_found", f"no live key {key_id[:64]!r}")
        key, secret = done
        await _audit(request, actor, "key.rotate", key)
        return {**key.public(), "key": secret}

    @api.delete("/v1/admin/keys/{key_id}")
    async def revoke(key_id: str, actor: Operator, request: Request) -> dict[str, Any]:
        key = _store(request).revoke(key_id)
        if key is None:
            raise ApiError(404, "key_not_found", f"no live key {key_id[:64]!r}")
        await _audit(request, actor, "key.revoke", key)
        return key.public()

    return api
