"""A throwaway network namespace with one routable address, for WebRTC tests.

aiortc's ICE never offers 127.0.0.1, so WebRTC cannot run over plain loopback; traffic may only go to loopback
or to addresses inside a namespace we create ourselves. The namespace gets a veth pair and a documentation-range
address (192.0.2.x, RFC 5737); the server and the client (or the browser) run inside it via `ip netns exec`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be created here (not root, no iproute2, or the kernel/container forbids it)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


@contextmanager
def network_namespace(prefix: str = "sgv") -> Iterator[tuple[str, str]]:
    """Yield (namespace name, address); the namespace is always deleted afterwards."""
    if shutil.which("ip") is None:
        raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
    if os.geteuid() != 0:
        raise NetnsUnavailable("creating a network namespace needs root")
    name = f"{prefix}-{secrets.token_hex(4)}"
    address = f"192.0.2.{2 + secrets.randbelow(250)}"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        raise NetnsUnavailable(f"`ip netns add` is not permitted here: {made.stderr.strip() or made.returncode}")
    try:
        try:
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "v0")
            _ip("-n", name, "link", "set", "v0", "up")
            _ip("-n", name, "link", "set", "v1", "up")
        except subprocess.CalledProcessError as exc:
            step = " ".join(exc.cmd)
            raise NetnsUnavailable(f"could not set up the namespace ({step}): {exc.stderr.strip()}") from None
        yield name, address
    finally:
        _ip("netns", "del", name, check=False)


def netns_exec(name: str) -> list[str]:
    """The command prefix that runs a program inside the namespace."""
    return ["ip", "netns", "exec", name]
