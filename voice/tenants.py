"""Tenants: whom an API key belongs to, and what that tenant may hold at once.

A tenant is a configured identity, not something read off a key. `SOMAGENT_TENANTS_FILE` names a JSON file:

    {"tenants": [{"id": "acme", "keys": ["sha256:5e88...", "sha256:9f86..."], "max_calls": 4, "max_sessions": 50}]}

Keys are stored as SHA-256 hashes (`somagent-voice hash-key KEY` prints one), so the file can be read, copied and
backed up without handing out a usable key; API keys are long random tokens, so a salted slow hash buys nothing
over SHA-256 and would cost every connection a key derivation. A key is looked up by its hash, never compared
as text. Keys given plainly in `SOMAGENT_API_KEYS` still work: each is a tenant of its own, named by the key's
fingerprint (`key-` and 12 hex digits of its hash), never by its last characters, which two keys may share.

What belongs to a tenant: its keys, the client secrets they mint (a browser's session is its minter's tenant),
its calls and their sidebands (another tenant's are "not found"), its router overrides, persona ones included
(router/overrides.py), and its limits: live WebRTC calls (`max_calls`, default SOMAGENT_MAX_CALLS_PER_KEY) and
live sessions of any transport (`max_sessions`, default SOMAGENT_MAX_SESSIONS_PER_TENANT; 0: only the server's
own capacity bounds them); what its keys may do (`capabilities`, per tenant or per key: `realtime`, to talk,
`conversation:inspect`, to read its stored audio vectors, `admin:models` and `admin:audit`, the router's admin API
and the audit log; `realtime` alone by default); how long its audio vectors
are kept (`retention_days`, default SOMAGENT_RETENTION_DAYS, 30; 0: kept).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANONYMOUS = "anonymous"  # developer-light, no key: one tenant for the machine's own user
REALTIME = "realtime"  # talk: sessions, calls, client secrets
INSPECT = "conversation:inspect"  # read the tenant's stored audio vectors and derived data (voice/inspect_api.py)
ADMIN_MODELS = "admin:models"  # the router's admin API (profiles, overrides, personas, mode)
ADMIN_AUDIT = "admin:audit"  # the audit log
CAPABILITIES = frozenset({REALTIME, INSPECT, ADMIN_MODELS, ADMIN_AUDIT})
DEFAULT_CAPABILITIES = frozenset({REALTIME})  # a key that names none; a client secret never has more
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
KEY_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def hash_key(token: str) -> str:
    """The stored form of an API key."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Tenant:
    id: str
    max_calls: int
    max_sessions: int = 0  # 0: no limit of its own
    retention_days: float = 30.0  # its stored audio vectors and derived data are purged after this (0: kept)


class TenantDirectory:
    """The configured tenants, and which key hash belongs to which."""

    def __init__(self, tenants: Iterable[Tenant] = (), keys: dict[str, str] | None = None, *,
                 default_max_calls: int = 4, default_max_sessions: int = 0, default_retention_days: float = 30.0,
                 capabilities: dict[str, frozenset[str]] | None = None) -> None:
        self.tenants = {t.id: t for t in tenants}
        self._by_hash = dict(keys or {})  # key hash -> tenant id
        self._caps = dict(capabilities or {})  # key hash -> what the key may do (DEFAULT_CAPABILITIES if absent)
        self.default = Tenant(ANONYMOUS, default_max_calls, default_max_sessions, default_retention_days)
        for tenant_id in self._by_hash.values():
            if tenant_id not in self.tenants:
                raise ValueError(f"key of unknown tenant {tenant_id!r}")

    @classmethod
    def build(cls, plain_keys: Iterable[str] = (), file: str = "", *, default_max_calls: int = 4,
              default_max_sessions: int = 0, default_retention_days: float = 30.0) -> TenantDirectory:
        """From SOMAGENT_API_KEYS (a tenant per key) and SOMAGENT_TENANTS_FILE; ValueError says what is wrong."""
        tenants: dict[str, Tenant] = {}
        keys: dict[str, str] = {}
        caps: dict[str, frozenset[str]] = {}
        for token in plain_keys:
            digest = hash_key(token)
            tenant_id = "key-" + digest[7:19]
            tenants[tenant_id] = Tenant(tenant_id, default_max_calls, default_max_sessions, default_retention_days)
            keys[digest] = tenant_id
        if file:
            for tenant, hashes in _read_file(file, default_max_calls, default_max_sessions, default_retention_days):
                if tenant.id in tenants:
                    raise ValueError(f"{file}: tenant {tenant.id!r} is configured twice")
                tenants[tenant.id] = tenant
                for digest, granted in hashes:
                    if digest in keys:
                        raise ValueError(f"{file}: a key of tenant {tenant.id!r} already belongs to "
                                         f"{keys[digest]!r}")
                    keys[digest] = tenant.id
                    caps[digest] = granted
        return cls(tenants.values(), keys, default_max_calls=default_max_calls,
                   default_max_sessions=default_max_sessions, default_retention_days=default_retention_days,
                   capabilities=caps)

    @property
    def has_keys(self) -> bool:
        return bool(self._by_hash)

    def tenant_of_key(self, token: str) -> Tenant | None:
        tenant_id = self._by_hash.get(hash_key(token))
        return self.tenants[tenant_id] if tenant_id is not None else None

    def capabilities_of_key(self, token: str) -> frozenset[str]:
        return self._caps.get(hash_key(token), DEFAULT_CAPABILITIES)

    def get(self, tenant_id: str) -> Tenant:
        """The tenant's limits; the defaults for the anonymous tenant (and any id no longer configured)."""
        return self.tenants.get(tenant_id) or Tenant(tenant_id, self.default.max_calls, self.default.max_sessions,
                                                     self.default.retention_days)


def _read_file(path: str, default_max_calls: int, default_max_sessions: int,
               default_retention_days: float) -> list[tuple[Tenant, list[tuple[str, frozenset[str]]]]]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read the tenants file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"the tenants file {path} is not JSON: {exc}") from None
    entries = data.get("tenants") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'{path}: expected {{"tenants": [...]}}')
    out = []
    for i, entry in enumerate(entries):
        where = f"{path}: tenants[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not an object")
        unknown = set(entry) - {"id", "keys", "max_calls", "max_sessions", "capabilities", "retention_days"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        tenant_id = entry.get("id")
        if not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id) or tenant_id == ANONYMOUS:
            raise ValueError(f"{where}: id must be 1-64 letters, digits, '.', '_' or '-' (and not {ANONYMOUS!r})")
        tenant_caps = _capabilities(entry.get("capabilities", sorted(DEFAULT_CAPABILITIES)), where)
        keys = entry.get("keys", [])
        if not isinstance(keys, list):
            raise ValueError(f"{where}: keys must be a list")
        hashes = []
        for k, key in enumerate(keys):
            digest, granted = (key, tenant_caps) if isinstance(key, str) else (
                (key.get("hash"), _capabilities(key.get("capabilities", sorted(tenant_caps)), f"{where}.keys[{k}]"))
                if isinstance(key, dict) and set(key) <= {"hash", "capabilities"} else (None, tenant_caps))
            if not isinstance(digest, str) or not KEY_HASH.fullmatch(digest):
                raise ValueError(f"{where}: keys must be 'sha256:<64 hex digits>' or {{\"hash\": ..., "
                                 "\"capabilities\": [...]}} (somagent-voice hash-key KEY prints one); plain keys "
                                 "are not stored")
            hashes.append((digest, granted))
        retention = entry.get("retention_days", default_retention_days)
        if not isinstance(retention, (int, float)) or isinstance(retention, bool) or retention < 0:
            raise ValueError(f"{where}: retention_days must be a number >= 0")
        out.append((Tenant(tenant_id, _limit(entry, "max_calls", default_max_calls, where),
                           _limit(entry, "max_sessions", default_max_sessions, where), float(retention)), hashes))
    return out


def _limit(entry: dict[str, Any], name: str, default: int, where: str) -> int:
    value = entry.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}: {name} must be a whole number >= 0")
    return value


def _capabilities(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValueError(f"{where}: capabilities must be a list of names")
    unknown = set(value) - CAPABILITIES
    if unknown:
        raise ValueError(f"{where}: unknown capabilities {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(CAPABILITIES))})")
    return frozenset(value)
