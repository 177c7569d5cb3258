"""router/catalog_file.py: an operator's catalogue file adds models and per-mode profiles."""

from __future__ import annotations

import pytest

from router import Role
from router.defaults import build_default_router
from router.modes import DeploymentMode
from router.settings import RouterSettings


def test_catalogue_file_adds_models_and_profiles(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import json

    spec = {
        "models": [
            {
                "name": "gpt-4o-mini",
                "roles": ["dialogue", "summary"],
                "base_url": "http://127.0.0.1:9/v1",
                "credentials_ref": "TEST_OPENAI_KEY",
                "quality": 0.78,
                "safety": ["content_filter"],
            },
            {
                "name": "house-7b",
                "roles": ["dialogue"],
                "base_url": "http://127.0.0.1:9/v1",
                "price": {"input": 0.0001, "output": 0.0002, "source": "internal chargeback"},
            },
        ],
        "profiles": {"production": {"dialogue": {"primary": "gpt-4o-mini", "fallbacks": ["house-7b"]}}},
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(spec))
    router = build_default_router(database_url=None, settings=RouterSettings(catalog_path=str(path)))
    assert router.catalog.entry("gpt-4o-mini").price.source.startswith("openai.com")  # from the published list
    assert router.catalog.entry("house-7b").price.input == 0.0001
    assert router.catalog.entry("gpt-4o-mini").serves(Role.SUMMARY)
    assert router.state.profile(Role.DIALOGUE, DeploymentMode.PRODUCTION).candidates == ("gpt-4o-mini", "house-7b")
    monkeypatch.delenv("TEST_OPENAI_KEY", raising=False)
    from adapters.errors import AdapterUnavailable

    with pytest.raises(AdapterUnavailable, match="TEST_OPENAI_KEY"):
        router.catalog.adapter("gpt-4o-mini")  # the key is read from the named variable, never the file
    spec["profiles"]["production"]["dialogue"]["fallbacks"] = ["nope"]
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="nope"):
        build_default_router(database_url=None, settings=RouterSettings(catalog_path=str(path)))
