"""Encryption at rest: one data key per tenant, wrapped by a master key; AES-256-GCM throughout (`cryptography`).

The master key (32 bytes, base64) comes from SOMAGENT_MASTER_KEY or the file SOMAGENT_MASTER_KEY_FILE; without
either, developer-light makes one in `data/master.key` (mode 0600) and says so, and test and production refuse
to store anything encrypted (`KeyringError` at start). Data keys are made at random on a tenant's first write,
stored only wrapped (`data/keyring.json`: AES-GCM of the key under the master key, the tenant id as associated
data, so one tenant's wrapped key cannot be passed off as another's).

A sealed value is `v1.<key version>.<nonce>.<ciphertext+tag>` (base64url), with associated data the caller names
(the tenant and the record's id): a value copied to another record or tenant fails to open. Rotation:
`rotate_master` re-wraps every data key under a new master key (the data is untouched); `rotate_tenant` gives a
tenant a new data key for what is written from then on, and keeps the old versions to open what was written
before. A wrong key, a changed byte or a value from elsewhere raises `KeyringError`, never returns garbage.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)
KEY_BYTES = 32
NONCE_BYTES = 12


class KeyringError(Exception):
    """A key is missing or wrong, or a sealed value does not open."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_master_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyringError("the master key must be 32 bytes, base64-encoded (python -c \"import os, base64; "
                           "print(base64.b64encode(os.urandom(32)).decode())\")")
    return key


def master_key_from_env(env: dict[str, str], data_dir: Path, allow_generate: bool) -> bytes:
    if env.get("SOMAGENT_MASTER_KEY"):
        return parse_master_key(env["SOMAGENT_MASTER_KEY"])
    if env.get("SOMAGENT_MASTER_KEY_FILE"):
        try:
            return parse_master_key(Path(env["SOMAGENT_MASTER_KEY_FILE"]).read_text())
        except OSError as exc:
            raise KeyringError(f"cannot read SOMAGENT_MASTER_KEY_FILE: {exc.strerror}") from None
    path = data_dir / "master.key"
    if path.exists():
        return parse_master_key(path.read_text())
    if not allow_generate:
        raise KeyringError("no master key: set SOMAGENT_MASTER_KEY or SOMAGENT_MASTER_KEY_FILE")
    data_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(key).decode())
    log.warning("made a master key in %s (developer-light); set SOMAGENT_MASTER_KEY elsewhere", path)
    return key


@dataclass
class _Wrapped:
    nonce: bytes
    wrapped: bytes


class Keyring:
    """The tenants' data keys, wrapped; `seal` and `open` for values of one tenant. Thread-safe (the vector
    store's worker thread uses it)."""

    def __init__(self, master_key: bytes, path: Path | None = None) -> None:
        if len(master_key) != KEY_BYTES:
            raise KeyringError("the master key must be 32 bytes")
        self._master = AESGCM(master_key)
        self._path = path
        self._lock = threading.Lock()
        self._keys: dict[str, list[_Wrapped]] = {}  # tenant -> versions, oldest first
        self._plain: dict[tuple[str, int], AESGCM] = {}
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            for tenant, versions in data.get("tenants", {}).items():
                self._keys[tenant] = [_Wrapped(_unb64(v["nonce"]), _unb64(v["wrapped"])) for v in versions]
            for tenant in self._keys:  # a wrong master key fails here, at start, not at the first read
                self._cipher(tenant, len(self._keys[tenant]) - 1)

    # -- keys ---------------------------------------------------------------------------------
    def _unwrap(self, tenant: str, version: int) -> AESGCM:
        return AESGCM(self._unwrap_raw(tenant, version))

    def _cipher(self, tenant: str, version: int) -> AESGCM:
        cached = self._plain.get((tenant, version))
        if cached is None:
            cached = self._plain[(tenant, version)] = self._unwrap(tenant, version)
        return cached

    def _new_version(self, tenant: str) -> int:
        versions = self._keys.setdefault(tenant, [])
        version = len(versions)
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        versions.append(_Wrapped(nonce, self._master.encrypt(nonce, key, f"{tenant}:{version}".encode())))
        self._plain[(tenant, version)] = AESGCM(key)
        self._save()
        return version

    def _save(self) -> None:
        if self._path is None:
            return
        data = {"tenants": {t: [{"nonce": _b64(w.nonce), "wrapped": _b64(w.wrapped)} for w in vs]
                            for t, vs in self._keys.items()}}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self._path)

    def versions(self, tenant: str) -> int:
        return len(self._keys.get(tenant, ()))

    # -- values -------------------------------------------------------------------------------
    def seal(self, tenant: str, plaintext: bytes, aad: str) -> str:
        with self._lock:
            version = len(self._keys[tenant]) - 1 if tenant in self._keys else self._new_version(tenant)
            cipher = self._cipher(tenant, version)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, plaintext, f"{tenant}|{aad}".encode())
        return f"v1.{version}.{_b64(nonce)}.{_b64(sealed)}"

    def open(self, tenant: str, token: str, aad: str) -> bytes:
        try:
            tag, version_text, nonce, sealed = token.split(".")
            version = int(version_text)
        except ValueError:
            raise KeyringError("not a sealed value") from None
        if tag != "v1" or not 0 <= version < self.versions(tenant):
            raise KeyringError(f"no key version {version_text} for tenant {tenant!r}")
        with self._lock:
            cipher = self._cipher(tenant, version)
        try:
            return cipher.decrypt(_unb64(nonce), _unb64(sealed), f"{tenant}|{aad}".encode())
        except (InvalidTag, ValueError):
            raise KeyringError("the sealed value does not open: a wrong key, a changed byte, or another "
                               "record's value") from None

    # -- rotation -----------------------------------------------------------------------------
    def rotate_tenant(self, tenant: str) -> int:
        """A new data key for what the tenant writes from now on; the old ones stay for what it wrote before."""
        with self._lock:
            return self._new_version(tenant)

    def rotate_master(self, new_master_key: bytes) -> None:
        """Every data key re-wrapped under the new master key; no stored value changes."""
        if len(new_master_key) != KEY_BYTES:
            raise KeyringError("the master key must be 32 bytes")
        with self._lock:
            plain = {(t, v): self._unwrap_raw(t, v) for t, vs in self._keys.items() for v in range(len(vs))}
            new = AESGCM(new_master_key)
            for (tenant, version), key in plain.items():
                nonce = os.urandom(NONCE_BYTES)
                self._keys[tenant][version] = _Wrapped(nonce, new.encrypt(nonce, key, f"{tenant}:{version}".encode()))
            self._master = new
            self._save()

    def _unwrap_raw(self, tenant: str, version: int) -> bytes:
        w = self._keys[tenant][version]
        try:
            return self._master.decrypt(w.nonce, w.wrapped, f"{tenant}:{version}".encode())
        except InvalidTag:
            raise KeyringError(f"tenant {tenant!r}'s data key does not open with this master key") from None
