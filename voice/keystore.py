"""API keys made and managed at run time (`/v1/admin/keys`), beside those of the tenants file.

Each key is stored as its SHA-256 only, with an id (`key_...`, what the API and the audit name it by), its tenant,
capabilities, a name, its last four characters (to tell keys apart in a list) and when it was made, rotated or
revoked. The secret itself is shown once, in the answer that made (or rotated) it. The file (SOMAGENT_KEYS_FILE,
default `data/keys.json`, mode 0600) is rewritten whole on each change, atomically; every worker of `serve
--workers N` reads it again when it changed, at most once a second, so a key made or revoked through one is so on
all within a second.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from voice.tenants import CAPABILITIES, TENANT_ID, hash_key

RELOAD_EVERY_S = 1.0


@dataclass(frozen=True)
class ManagedKey:
    id: str
    tenant: str
    hash: str
    capabilities: tuple[str, ...]
    name: str
    last4: str
    created_at: float
    rotated_at: float | None = None
    revoked_at: float | None = None

    def public(self) -> dict:
        """What a listing shows: everything but the hash."""
        out = asdict(self)
        out.pop("hash")
        out["capabilities"] = list(self.capabilities)
        return out


class KeyStore:
    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, ManagedKey] = {}
        self._by_hash: dict[str, str] = {}
        self._mtime = 0.0
        self._checked = 0.0
        self._load()

    # -- persistence --------------------------------------------------------------------------
    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        self._mtime = self._path.stat().st_mtime
        data = json.loads(self._path.read_text())
        keys = {k["id"]: ManagedKey(**{**k, "capabilities": tuple(k["capabilities"])}) for k in data.get("keys", [])}
        self._keys = keys
        self._by_hash = {k.hash: k.id for k in keys.values() if k.revoked_at is None}

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": [{**asdict(k), "capabilities": list(k.capabilities)} for k in self._keys.values()]}, f)
        os.replace(tmp, self._path)
        self._mtime = self._path.stat().st_mtime

    def _refresh(self) -> None:
        """Another worker may have changed the file: read it again when it did (checked once a second)."""
        now = time.monotonic()
        if self._path is None or now - self._checked < RELOAD_EVERY_S:
            return
        self._checked = now
        try:
            if self._path.stat().st_mtime != self._mtime:
                self._load()
        except OSError:
            pass

    # -- lookups ------------------------------------------------------------------------------
    def lookup(self, token: str) -> ManagedKey | None:
        """The live key whose hash this token has, or None (a key another worker revoked is refused here within
        RELOAD_EVERY_S)."""
        digest = hash_key(token)
        with self._lock:
            self._refresh()
            key_id = self._by_hash.get(digest)
            return self._keys.get(key_id) if key_id is not None else None

    def list(self, tenant: str | None = None) -> list[ManagedKey]:
        with self._lock:
            self._refresh()
            return sorted((k for k in self._keys.values() if tenant is None or k.tenant == tenant),
                          key=lambda k: k.created_at)

    # -- changes ------------------------------------------------------------------------------
    @staticmethod
    def _check(tenant: str, capabilities: list[str]) -> None:
        if not TENANT_ID.fullmatch(tenant):
            raise ValueError("tenant must be 1-64 letters, digits, '.', '_' or '-'")
        unknown = set(capabilities) - CAPABILITIES
        if unknown:
            raise ValueError(f"unknown capabilities {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(sorted(CAPABILITIES))})")

    def create(self, tenant: str, capabilities: list[str], name: str = "") -> tuple[ManagedKey, str]:
        """A new key; returns it and its secret (shown this once)."""
        self._check(tenant, capabilities)
        token = "sk-" + secrets.token_urlsafe(32)
        key = ManagedKey("key_" + secrets.token_hex(8), tenant, hash_key(token), tuple(sorted(set(capabilities))),
                         name[:100], token[-4:], self._clock())
        with self._lock:
            self._refresh()
            self._keys[key.id] = key
            self._by_hash[key.hash] = key.id
            self._save()
        return key, token

    def revoke(self, key_id: str) -> ManagedKey | None:
        with self._lock:
            self._refresh()
            key = self._keys.get(key_id)
            if key is None or key.revoked_at is not None:
                return None
            self._keys[key_id] = key = replace(key, revoked_at=self._clock())
            self._by_hash.pop(key.hash, None)
            self._save()
            return key

    def rotate(self, key_id: str) -> tuple[ManagedKey, str] | None:
        """The same key (id, tenant, capabilities) with a new secret; the old secret stops working now."""
        token = "sk-" + secrets.token_urlsafe(32)
        with self._lock:
            self._refresh()
            key = self._keys.get(key_id)
            if key is None or key.revoked_at is not None:
                return None
            self._by_hash.pop(key.hash, None)
            key = replace(key, hash=hash_key(token), last4=token[-4:], rotated_at=self._clock())
            self._keys[key_id] = key
            self._by_hash[key.hash] = key_id
            self._save()
        return key, token
