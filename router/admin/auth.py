"""Admin keys: only their SHA-256 is kept (in memory and in the store); SOMAGENT_ADMIN_KEY bootstraps one."""

from __future__ import annotations

import hashlib
import hmac


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class AdminKeys:
    def __init__(self) -> None:
        self._by_hash: dict[str, str] = {}  # hash -> key name

    def add(self, name: str, key_hash: str) -> None:
        self._by_hash[key_hash] = name

    @property
    def configured(self) -> bool:
        return bool(self._by_hash)

    def verify(self, presented: str) -> str | None:
        """The key's name, or None. Compares digests in constant time."""
        digest = hash_key(presented)
        found = None
        for key_hash, name in self._by_hash.items():
            if hmac.compare_digest(digest, key_hash):
                found = name
        return found
