"""The inspect API: a tenant's stored audio vectors and derived data, for callers with `conversation:inspect`.

- `GET /v1/inspect/utterances/{item_id}/similar?limit=&persona_id=`: the tenant's utterances nearest a stored one;
- `POST /v1/inspect/similar?limit=&persona_id=` (a WAV, FLAC or OGG body, at most MAX_UPLOAD_BYTES): nearest the
  upload's one utterance (its vector is computed as the audio loop computes it; the audio is neither kept nor
  logged);
- `GET /v1/inspect/conversations/{conversation_id}`: the conversation's utterances in order, as derived data
  (envelope, analytics, the transcript where the tenant's retention keeps it);
- `GET /v1/inspect/anomalies?persona_id=&limit=`: utterances far from the tenant's (or the persona's) norm, and
  those the analytics labelled anomalous.

Only the caller's tenant is ever read (its own collection). Each read writes an audit entry (the router's audit
log): the actor, the capability, the tenant, how many utterances came back and a SHA-256 of their ids, the
query's hash for an upload: never audio, never transcript text.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from typing import Annotated, Any

import numpy as np
import soundfile as sf
from fastapi import APIRouter, Depends, Query, Request

from dsp import StreamingFeatures, resample
from dsp.embedding import UtteranceEmbedding
from voice.api_errors import ApiError
from voice.auth import Principal, requires
from voice.tenants import INSPECT
from voice.vectors import AudioVault, StoredUtterance

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_LIMIT = 50


def _vault(request: Request) -> AudioVault:
    vault = request.app.state.server.vault
    if vault is None:
        raise ApiError(503, "vectors_not_kept", "this server keeps no audio vectors (SOMAGENT_AUDIO_VECTORS, and a "
                       "master key outside developer-light)")
    return vault


async def _audit(request: Request, principal: Principal, action: str, target: str,
                 found: list[StoredUtterance], **extra: Any) -> None:
    ids = ",".join(sorted(u.item_id for u in found))
    detail = {"capability": INSPECT, "tenant": principal.tenant, "results": len(found),
              "items_sha256": hashlib.sha256(ids.encode()).hexdigest(), **extra}
    await request.app.state.server.router.admin.record(f"{principal.key_id}@{principal.tenant}", action, target,
                                                      detail)


def _vector_of(data: bytes) -> np.ndarray | None:
    """The upload's vector, as the loop makes it (16 kHz mono, the same features); a worker thread's job."""
    try:
        pcm, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except (RuntimeError, ValueError, sf.LibsndfileError) as exc:
        raise ApiError(400, "invalid_audio", f"the body is no audio file soundfile reads: {exc}") from None
    mono = pcm.mean(axis=1).astype(np.int16) if pcm.shape[1] > 1 else pcm[:, 0]
    if rate != 16000:
        mono = resample(mono, rate, 16000)
    features, emb = StreamingFeatures(), UtteranceEmbedding()
    for i in range(0, len(mono), 16000):
        emb.add(features.push(mono[i:i + 16000]))
    return emb.vector()


# module level: the routes' annotations are strings (postponed evaluation), resolved in this module's globals
Inspector = Annotated[Principal, Depends(requires(INSPECT))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def inspect_routes() -> APIRouter:
    api = APIRouter()

    @api.get("/v1/inspect/utterances/{item_id}/similar")
    async def similar_to_item(item_id: str, principal: Inspector, request: Request, limit: Limit = 5,
                              persona_id: str | None = None) -> dict[str, Any]:
        vault = _vault(request)
        stored = await vault.call(vault.store.get, principal.tenant, item_id)
        if stored is None or stored.vector is None:
            raise ApiError(404, "item_not_found", f"no stored utterance {item_id[:64]!r}")
        found = await vault.call(vault.store.similar, principal.tenant, stored.vector, limit, persona_id, item_id)
        await _audit(request, principal, "inspect.similar", f"{principal.tenant}:{item_id}", found)
        return {"item_id": item_id, "similar": [u.to_dict() for u in found]}

    @api.post("/v1/inspect/similar")
    async def similar_to_upload(principal: Inspector, request: Request, limit: Limit = 5,
                                persona_id: str | None = None) -> dict[str, Any]:
        vault = _vault(request)
        data = await request.body()
        if len(data) > MAX_UPLOAD_BYTES:
            raise ApiError(413, "upload_too_large", f"at most {MAX_UPLOAD_BYTES} bytes of audio")
        vector = await asyncio.to_thread(_vector_of, data)
        if vector is None:
            raise ApiError(400, "no_speech", "the upload has no utterance to compare (too short, or silent)")
        found = await vault.call(vault.store.similar, principal.tenant, vector, limit, persona_id)
        await _audit(request, principal, "inspect.similar_upload", f"{principal.tenant}:upload", found,
                     query_sha256=hashlib.sha256(data).hexdigest())
        return {"similar": [u.to_dict() for u in found]}

    @api.get("/v1/inspect/conversations/{conversation_id}")
    async def conversation(conversation_id: str, principal: Inspector, request: Request) -> dict[str, Any]:
        vault = _vault(request)
        found = await vault.call(vault.store.conversation, principal.tenant, conversation_id)
        await _audit(request, principal, "inspect.conversation", f"{principal.tenant}:{conversation_id}", found)
        if not found:
            raise ApiError(404, "conversation_not_found", f"no stored utterance of {conversation_id[:64]!r}")
        return {"conversation_id": conversation_id, "utterances": [u.to_dict() for u in found]}

    @api.get("/v1/inspect/anomalies")
    async def anomalies(principal: Inspector, request: Request, limit: Limit = 20,
                        persona_id: str | None = None) -> dict[str, Any]:
        vault = _vault(request)
        found = await vault.call(vault.store.anomalies, principal.tenant, persona_id, limit)
        await _audit(request, principal, "inspect.anomalies", f"{principal.tenant}:{persona_id or '*'}", found)
        return {"anomalies": [u.to_dict() for u in found]}

    return api
