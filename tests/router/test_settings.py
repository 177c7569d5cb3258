"""router/settings.py: the router's settings from the environment."""

from __future__ import annotations

import pytest

from router.modes import DeploymentMode, SelectionWeights
from router.settings import RouterSettings


def test_settings_from_env() -> None:
    s = RouterSettings.from_env(
        {
            "SOMAGENT_DEPLOYMENT_MODE": "production",
            "AUTO_MODEL_SELECTION_ENABLED": "true",
            "SOMAGENT_ROUTER_SELECTION_WEIGHTS": "cost=0.6,latency=0.1",
        }
    )
    assert (s.mode, s.auto_selection) == (DeploymentMode.PRODUCTION, True)
    assert s.selection_weights == SelectionWeights(cost=0.6, success=0.3, latency=0.1)
    assert s.database_url == "sqlite:///./data/somagent.db"
    with pytest.raises(ValueError, match="SOMAGENT_DEPLOYMENT_MODE"):
        RouterSettings.from_env({"SOMAGENT_DEPLOYMENT_MODE": "staging"})
    with pytest.raises(ValueError, match="AUTO_MODEL_SELECTION_ENABLED"):
        RouterSettings.from_env({"AUTO_MODEL_SELECTION_ENABLED": "maybe"})
    with pytest.raises(ValueError):
        RouterSettings.from_env({"SOMAGENT_ROUTER_SELECTION_WEIGHTS": "speed=1"})
