"""An operator's catalogue file (SOMAGENT_ROUTER_CATALOG): more models and per-mode profiles, as JSON.

    {"models": [{"name": "gpt-4o-mini", "roles": ["dialogue", "summary"], "adapter": "openai-compatible",
                 "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini",
                 "credentials_ref": "OPENAI_API_KEY", "price": {"input": 0.00015, "output": 0.0006},
                 "quality": 0.78, "safety": ["content_filter"]}],
     "profiles": {"production": {"dialogue": {"primary": "gpt-4o-mini", "fallbacks": ["claude-3-5-haiku"]}}}}

Keys are read from the environment variable named by `credentials_ref` when the adapter is first built;
the file never holds a secret. A price missing from the file and from the known list stays unknown.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.errors import AdapterUnavailable
from adapters.llm.openai_compat import OpenAICompatChat, OpenAICompatConfig
from router.catalog import Catalog, ModelEntry, Price, role_unit
from router.modes import DeploymentMode
from router.prices import known_price
from router.profiles import ModelProfile
from router.roles import Role


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    output: float = Field(default=0.0, ge=0)
    source: str = ""


class ModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1)
    adapter: Literal["openai-compatible"] = "openai-compatible"
    base_url: str
    model: str | None = None  # the provider's model id; defaults to `name`
    credentials_ref: str | None = None
    price: PriceIn | None = None
    quality: float | None = Field(default=None, ge=0, le=1)
    safety: list[str] = []
    expected_first_output_ms: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    tools: bool = True  # the server takes chat-completions `tools` (false: it is handed tool results as text)


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primary: str
    fallbacks: list[str] = []
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    credentials_ref: str | None = None
    first_output_deadline_s: float | None = Field(default=None, gt=0)
    stall_timeout_s: float | None = Field(default=None, gt=0)


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[ModelIn] = []
    profiles: dict[DeploymentMode, dict[Role, ProfileIn]] = {}


def _factory(m: ModelIn):  # noqa: ANN202 - a zero-argument adapter factory
    def build() -> OpenAICompatChat:
        key = "not-needed"
        if m.credentials_ref:
            key = os.environ.get(m.credentials_ref, "")
            if not key:
                raise AdapterUnavailable(f"{m.name}: environment variable {m.credentials_ref} is not set")
        return OpenAICompatChat(
            OpenAICompatConfig(base_url=m.base_url, model=m.model or m.name, api_key=key, timeout_s=m.timeout_s)
        )

    return build


def load_catalog_file(path: str | Path, catalog: Catalog) -> dict[DeploymentMode, dict[Role, ModelProfile]]:
    """Add the file's models to `catalog`; return its per-mode profiles (validated against the catalogue)."""
    try:
        spec = CatalogFile.model_validate(json.loads(Path(path).read_text()))
    except (OSError, ValueError, ValidationError) as exc:
        raise ValueError(f"router catalogue {path}: {exc}") from exc
    for m in spec.models:
        roles = list(dict.fromkeys(m.roles))
        unit = role_unit(roles[0])
        if any(role_unit(r) is not unit for r in roles):
            raise ValueError(f"router catalogue {path}: {m.name} mixes roles billed in different units")
        price = (
            Price(unit, m.price.input, m.price.output, m.price.source or str(path))
            if m.price is not None
            else known_price(m.model or m.name)
        )
        catalog.add(
            ModelEntry(
                m.name,
                roles[0],
                "openai-compatible",
                _factory(m),
                price=price,
                adapter=m.adapter,
                roles=frozenset(roles[1:]),
                quality=m.quality,
                safety=frozenset(m.safety),
                expected_first_output_ms=m.expected_first_output_ms,
                credentials_ref=m.credentials_ref,
                tools=m.tools,
            )
        )
    out: dict[DeploymentMode, dict[Role, ModelProfile]] = {}
    for mode, profiles in spec.profiles.items():
        for role, p in profiles.items():
            for name in (p.primary, *p.fallbacks):
                entry = catalog.get(name)
                if entry is None or not entry.serves(role):
                    raise ValueError(
                        f"router catalogue {path}: {mode.value}/{role.value}: "
                        f"{name!r} is not a catalogue model serving that role"
                    )
            out.setdefault(mode, {})[role] = ModelProfile(
                role,
                p.primary,
                tuple(p.fallbacks),
                p.temperature,
                p.max_tokens,
                p.credentials_ref,
                p.first_output_deadline_s,
                p.stall_timeout_s,
            )
    return out
