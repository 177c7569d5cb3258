"""voice/tenants.py and the tenant a caller gets in voice/auth.py: configured identities, keys stored hashed."""

from __future__ import annotations

import json

import pytest

from voice.auth import Authenticator
from voice.config import Settings
from voice.tenants import ANONYMOUS, TenantDirectory, hash_key


def _file(tmp_path, tenants) -> str:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": tenants}))
    return str(path)


def test_keys_belong_to_configured_tenants_by_their_hash(tmp_path):
    path = _file(tmp_path, [
        {"id": "acme", "keys": [hash_key("sk-acme-one"), hash_key("sk-acme-two")], "max_calls": 2, "max_sessions": 5},
        {"id": "globex", "keys": [hash_key("sk-globex")]},
    ])
    directory = TenantDirectory.build(file=path, default_max_calls=4, default_max_sessions=0)
    assert directory.tenant_of_key("sk-acme-one").id == directory.tenant_of_key("sk-acme-two").id == "acme"
    assert directory.tenant_of_key("sk-globex").id == "globex"
    assert directory.tenant_of_key("sk-acme-one ") is None and directory.tenant_of_key(hash_key("sk-globex")) is None
    assert (directory.get("acme").max_calls, directory.get("acme").max_sessions) == (2, 5)
    assert (directory.get("globex").max_calls, directory.get("globex").max_sessions) == (4, 0)  # the defaults
    assert "sk-acme-one" not in open(path).read()  # only hashes are stored


def test_two_keys_with_the_same_last_characters_are_two_tenants():
    """The tenant used to be 'key:' + the last 4 characters: alpha-1234 and bravo-1234 shared one quota."""
    auth = Authenticator(Settings(deployment_mode="test", api_keys=frozenset({"alpha-1234", "bravo-1234"})))
    a, b = auth.check("alpha-1234"), auth.check("bravo-1234")
    assert a.key_id == b.key_id == "key:1234"  # the label for logs may collide ...
    assert a.tenant != b.tenant  # ... whose calls and quota these are does not
    assert a.tenant.startswith("key-") and "1234" not in a.tenant


def test_a_client_secret_is_its_minting_keys_tenant(tmp_path):
    path = _file(tmp_path, [{"id": "acme", "keys": [hash_key("sk-acme")]}])
    auth = Authenticator(Settings(deployment_mode="production", tenants_file=path))
    owner = auth.check("sk-acme")
    value, _ = auth.issue_secret(owner, 60, {"instructions": "hi"})
    secret = auth.check(value)
    assert secret.is_client_secret and secret.tenant == "acme" and secret.session == {"instructions": "hi"}
    assert Authenticator(Settings()).check(None).tenant == ANONYMOUS


@pytest.mark.parametrize("tenants,message", [
    ([{"id": "acme", "keys": ["sk-plain-key"]}], "plain keys are not stored"),
    ([{"id": "acme", "keys": []}, {"id": "acme", "keys": []}], "configured twice"),
    ([{"id": "a", "keys": [hash_key("k")]}, {"id": "b", "keys": [hash_key("k")]}], "already belongs to 'a'"),
    ([{"id": "has/slash"}], "id must be"),
    ([{"id": ANONYMOUS}], "id must be"),
    ([{"id": "acme", "max_calls": -1}], "max_calls must be"),
    ([{"id": "acme", "quota": 3}], "unknown field(s) quota"),
])
def test_a_bad_tenants_file_is_refused_at_start_with_the_reason(tmp_path, tenants, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TenantDirectory.build(file=_file(tmp_path, tenants))


def test_an_unreadable_tenants_file_says_so(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        TenantDirectory.build(file=str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="not JSON"):
        TenantDirectory.build(file=str(tmp_path / "bad.json"))


def test_the_cli_prints_a_keys_stored_form_read_from_stdin(monkeypatch, capsys):
    import io

    from voice.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("sk-acme-one\n"))
    assert main(["hash-key"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == hash_key("sk-acme-one") and printed.startswith("sha256:") and len(printed) == 7 + 64
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["hash-key"]) == 2


def test_settings_read_the_tenants_file_and_per_tenant_defaults_from_the_environment(tmp_path):
    env = {"SOMAGENT_TENANTS_FILE": "/etc/somagent/tenants.json", "SOMAGENT_MAX_SESSIONS_PER_TENANT": "7",
           "SOMAGENT_MAX_CALLS_PER_KEY": "3"}
    settings = Settings.from_env(env)
    assert (settings.tenants_file, settings.max_sessions_per_tenant, settings.max_calls_per_key) == (
        "/etc/somagent/tenants.json", 7, 3)
