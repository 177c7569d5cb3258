"""Admin keys: only their SHA-256 is kept (in memory and in the store); SOMAGENT_ADMIN_KEY bootstraps one."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


ADMIN_MODELS = "admin:models"  # the router's configuration: profiles, overrides, personas, mode, telemetry
ADMIN_AUDIT = "admin:audit"  # the audit log


class AdminKeys:
    def __init__(self) -> None:
        self._by_hash: dict[str, str] = {}  # hash -> key name
        # API keys that carry an admin capability (the voice server's tenants, voice/tenants.py): (key,
        # capability) -> the actor's name, or None. Set by the composition root; the router knows no tenants.
        self.delegate: Callable[[str, str], str | None] | None = None

    def add(self, name: str, key_hash: str) -> None:
        self._by_hash[key_hash] = name

    @property
    def configured(self) -> bool:
        return bool(self._by_hash) or self.delegate is not None

    def authorise(self, presented: str, capability: str) -> str | None:
        """An admin key's name, or the actor of an API key that carries `capability`; None otherwise."""
        name = self.verify(presented)
        if name is None and self.delegate is not None:
            name = self.delegate(presented, capability)
        return name

    def verify(self, presented: str) -> str | None:
        """The key's name, or None. Compares digests in constant time."""
        digest = hash_key(presented)
        found = None
        for key_hash, name in self._by_hash.items():
            if hmac.compare_digest(digest, key_hash):
                found = name
        return found
