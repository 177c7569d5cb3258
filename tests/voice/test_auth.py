"""voice/auth.py: keys optional in developer-light but never a wrong configured one; client secrets expire."""

import pytest

from voice.auth import Authenticator, AuthError
from voice.config import Settings


def test_expired_secret_is_refused():
    now = [1000.0]
    auth = Authenticator(Settings(deployment_mode="production", api_keys=frozenset({"k"})), clock=lambda: now[0])
    owner = auth.check("k")
    value, expires_at = auth.issue_secret(owner, 30, None)
    assert auth.check(value).key_id.startswith("secret:")
    now[0] += 31
    with pytest.raises(AuthError) as info:
        auth.check(value)
    assert info.value.code == "client_secret_expired"


def test_developer_light_allows_missing_key_but_not_a_wrong_configured_one():
    auth = Authenticator(Settings(api_keys=frozenset({"k"})))
    assert auth.check(None).key_id == "anonymous"
    with pytest.raises(AuthError):
        auth.check("typo")
    assert Authenticator(Settings()).check("anything").key_id == "anonymous"
