"""One worker of a multi-process server (`serve --workers N`) and how it reaches the others.

The kernel spreads new connections over the workers (SO_REUSEPORT), so a request can land on a worker that
does not hold what it names. Each worker also listens on its own Unix socket in the server's run directory;
over it the workers ask each other for their health and metrics, hand a freshly minted client secret to
all, and forward a call's requests to the worker that owns the call (its id says which: `rtc_w<k>_...`).
Internal requests carry the server's shared token (`x-somagent-internal`), which no client knows.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

INTERNAL_HEADER = "x-somagent-internal"
ENV = {"index": "SOMAGENT_WORKER_INDEX", "count": "SOMAGENT_WORKER_COUNT", "run_dir": "SOMAGENT_WORKER_DIR",
       "token": "SOMAGENT_WORKER_TOKEN"}
_CALL_OWNER = re.compile(r"^rtc_w(\d+)_")


@dataclass(frozen=True)
class WorkerIdentity:
    index: int
    count: int
    run_dir: str
    token: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerIdentity | None:
        """The worker this process is, or None for a single-process server."""
        if not env.get(ENV["index"]):
            return None
        try:
            index, count = int(env[ENV["index"]]), int(env.get(ENV["count"], "1"))
        except ValueError:
            raise ValueError("SOMAGENT_WORKER_INDEX and SOMAGENT_WORKER_COUNT must be integers") from None
        run_dir, token = env.get(ENV["run_dir"], ""), env.get(ENV["token"], "")
        if not 0 <= index < count or not run_dir or not token:
            raise ValueError("a worker needs 0 <= SOMAGENT_WORKER_INDEX < SOMAGENT_WORKER_COUNT, "
                             "SOMAGENT_WORKER_DIR and SOMAGENT_WORKER_TOKEN (set by `serve --workers`)")
        return cls(index, count, run_dir, token)

    def socket_path(self, index: int | None = None) -> str:
        return str(Path(self.run_dir) / f"worker-{self.index if index is None else index}.sock")

    def env(self) -> dict[str, str]:
        return {ENV["index"]: str(self.index), ENV["count"]: str(self.count), ENV["run_dir"]: self.run_dir,
                ENV["token"]: self.token}

    def call_id_prefix(self) -> str:
        return f"rtc_w{self.index}_"

    def is_internal(self, headers: Mapping[str, str]) -> bool:
        return hmac.compare_digest(headers.get(INTERNAL_HEADER, ""), self.token)


def call_owner(call_id: str) -> int | None:
    """The worker a call id belongs to (None: a single-process server's id)."""
    m = _CALL_OWNER.match(call_id)
    return int(m.group(1)) if m else None


class Siblings:
    """This worker's clients to the others, one keep-alive connection pool per sibling socket."""

    def __init__(self, me: WorkerIdentity, timeout_s: float = 2.0) -> None:
        self.me = me
        self._timeout = timeout_s
        self._clients: dict[int, httpx.AsyncClient] = {}

    @property
    def others(self) -> list[int]:
        return [k for k in range(self.me.count) if k != self.me.index]

    def _client(self, index: int) -> httpx.AsyncClient:
        client = self._clients.get(index)
        if client is None:
            transport = httpx.AsyncHTTPTransport(uds=self.me.socket_path(index))
            client = httpx.AsyncClient(transport=transport, base_url="http://worker", timeout=self._timeout,
                                       headers={INTERNAL_HEADER: self.me.token})
            self._clients[index] = client
        return client

    async def request(self, index: int, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                      json: Any = None, content: bytes | None = None) -> httpx.Response:
        """One request to worker `index`; raises httpx.HTTPError when it does not answer."""
        return await self._client(index).request(method, path, headers=dict(headers or {}), json=json,
                                                 content=content)

    async def each(self, method: str, path: str, *, json: Any = None) -> dict[int, httpx.Response | Exception]:
        """The same request to every other worker at once: each one's response or the error it gave."""
        async def one(k: int) -> httpx.Response | Exception:
            try:
                return await self.request(k, method, path, json=json)
            except httpx.HTTPError as exc:
                return exc

        results = await asyncio.gather(*(one(k) for k in self.others))
        return dict(zip(self.others, results, strict=True))

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
