"""voice/config.py: the environment is read once into one settings object, with one deployment mode type."""

from __future__ import annotations

from dataclasses import replace

import pytest

from router.modes import DeploymentMode
from router.settings import RouterSettings
from voice.config import ModelSettings, Settings


def test_from_env_reads_the_mode_once_for_the_server_and_the_router():
    settings = Settings.from_env({"SOMAGENT_DEPLOYMENT_MODE": "test", "SOMAGENT_LLM_BASE_URL": "http://127.0.0.1:9/v1",
                                  "SOMAGENT_MAX_SESSIONS": "7"})
    assert settings.deployment_mode is DeploymentMode.TEST and settings.requires_key
    assert settings.models.router.mode is DeploymentMode.TEST
    assert settings.models.llm.base_url == "http://127.0.0.1:9/v1" and settings.models.whisper is None
    assert settings.capacity.max_sessions == 7


def test_a_mode_given_in_code_is_the_same_type_and_checked():
    assert Settings(deployment_mode="production").deployment_mode is DeploymentMode.PRODUCTION
    with pytest.raises(ValueError, match="deployment mode must be one of"):
        Settings(deployment_mode="staging")
    with pytest.raises(ValueError, match="SOMAGENT_DEPLOYMENT_MODE must be one of"):
        Settings.from_env({"SOMAGENT_DEPLOYMENT_MODE": "prod"})


def test_the_router_cannot_run_in_another_mode_than_the_server():
    models = ModelSettings(router=replace(RouterSettings(), mode=DeploymentMode.PRODUCTION))
    with pytest.raises(ValueError, match="not the server's"):
        Settings(deployment_mode="test", models=models)


def test_settings_reject_unknown_mode():
    with pytest.raises(ValueError, match="SOMAGENT_DEPLOYMENT_MODE"):
        Settings.from_env({"SOMAGENT_DEPLOYMENT_MODE": "staging"})
    s = Settings.from_env({"SOMAGENT_DEPLOYMENT_MODE": "production", "SOMAGENT_API_KEYS": "a, b,,"})
    assert s.api_keys == frozenset({"a", "b"}) and s.requires_key
