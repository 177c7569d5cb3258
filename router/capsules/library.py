"""The capsules a router knows: those shipped in the repository and those added through the API (stored)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from router.capsules.capsule import Capsule, CapsuleError, load_dir, shipped_dir
from router.roles import Role
from router.store.benchmarks import BenchmarkResults


class CapsuleLibrary:
    def __init__(self, results: BenchmarkResults, directory: Path | None = None) -> None:
        self.results = results
        self.directory = directory if directory is not None else shipped_dir()
        self._capsules: dict[str, Capsule] = {}  # "name@version" -> capsule
        self._loaded = False

    async def load(self) -> None:
        shipped = await asyncio.to_thread(load_dir, self.directory)
        stored = await asyncio.to_thread(self.results.capsules)
        for capsule in shipped:
            self._capsules[capsule.key] = capsule
        for data in stored:
            try:
                capsule = Capsule.from_dict(data, self.directory)
            except CapsuleError:
                continue  # a stored capsule whose recordings are gone: listed by the store, not runnable
            self._capsules.setdefault(capsule.key, capsule)
        self._loaded = True

    async def _ensure(self) -> None:
        if not self._loaded:
            await self.load()

    async def add(self, data: object, actor: str, now: float) -> Capsule:
        """Validate and store a capsule; a name@version already held with another definition is refused."""
        await self._ensure()
        capsule = Capsule.from_dict(data, self.directory)
        held = self._capsules.get(capsule.key)
        if held is not None and held.digest != capsule.digest:
            raise CapsuleError(f"capsule {capsule.key} exists with another definition: give it a new version")
        ok = await asyncio.to_thread(self.results.put_capsule, capsule.name, capsule.version, capsule.kind,
                                     capsule.digest, capsule.to_dict(), now, actor)
        if not ok:
            raise CapsuleError(f"capsule {capsule.key} exists with another definition: give it a new version")
        self._capsules[capsule.key] = capsule
        return capsule

    async def all(self) -> list[Capsule]:
        await self._ensure()
        return [self._capsules[k] for k in sorted(self._capsules)]

    async def for_role(self, role: Role) -> list[Capsule]:
        """The newest version of each capsule that measures the role."""
        newest: dict[str, Capsule] = {}
        for capsule in await self.all():
            if role in capsule.roles:
                held = newest.get(capsule.name)
                if held is None or _version_key(capsule.version) > _version_key(held.version):
                    newest[capsule.name] = capsule
        return [newest[n] for n in sorted(newest)]

    async def get(self, name: str, version: str | None = None) -> Capsule | None:
        await self._ensure()
        if version is not None:
            return self._capsules.get(f"{name}@{version}")
        versions = [c for c in self._capsules.values() if c.name == name]
        return max(versions, key=lambda c: _version_key(c.version)) if versions else None


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.replace("-", ".").split("."))
