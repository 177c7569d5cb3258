"""voice/keyring.py: per-tenant data keys wrapped by a master key; rotation keeps old data readable; a wrong key
or a moved value fails loudly."""

from __future__ import annotations

import os

import pytest

from voice.keyring import Keyring, KeyringError, master_key_from_env, parse_master_key


def test_a_value_opens_for_its_tenant_and_record_only(tmp_path):
    ring = Keyring(os.urandom(32), tmp_path / "keyring.json")
    token = ring.seal("acme", b"go forward ten meters", aad="item_1")
    assert b"forward" not in token.encode() and "forward" not in (tmp_path / "keyring.json").read_text()
    assert ring.open("acme", token, aad="item_1") == b"go forward ten meters"
    with pytest.raises(KeyringError):
        ring.open("globex", token, aad="item_1")  # another tenant: no key, or the wrong one
    ring.seal("globex", b"x", aad="item_9")
    with pytest.raises(KeyringError):
        ring.open("globex", token, aad="item_1")
    with pytest.raises(KeyringError):
        ring.open("acme", token, aad="item_2")  # copied onto another record
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(KeyringError):
        ring.open("acme", tampered, aad="item_1")


def test_rotation_rewraps_and_old_data_still_opens_but_a_wrong_master_key_fails_loudly(tmp_path):
    path = tmp_path / "keyring.json"
    first, second = os.urandom(32), os.urandom(32)
    ring = Keyring(first, path)
    old = ring.seal("acme", b"before", aad="a")
    assert ring.rotate_tenant("acme") == 1
    new = ring.seal("acme", b"after", aad="b")
    assert old.split(".")[1] == "0" and new.split(".")[1] == "1"
    ring.rotate_master(second)
    reopened = Keyring(second, path)  # a restart with the new master key
    assert reopened.open("acme", old, aad="a") == b"before" and reopened.open("acme", new, aad="b") == b"after"
    with pytest.raises(KeyringError, match="does not open with this master key"):
        Keyring(first, path)  # the old master key no longer opens anything: at start, not at a read
    with pytest.raises(KeyringError):
        Keyring(os.urandom(32), path)


def test_the_master_key_comes_from_the_environment_a_file_or_is_made_in_developer_light(tmp_path):
    key = os.urandom(32)
    import base64

    text = base64.b64encode(key).decode()
    assert master_key_from_env({"SOMAGENT_MASTER_KEY": text}, tmp_path, allow_generate=False) == key
    (tmp_path / "k").write_text(text + "\n")
    assert master_key_from_env({"SOMAGENT_MASTER_KEY_FILE": str(tmp_path / "k")}, tmp_path, False) == key
    with pytest.raises(KeyringError, match="no master key"):
        master_key_from_env({}, tmp_path / "prod", allow_generate=False)
    made = master_key_from_env({}, tmp_path / "dev", allow_generate=True)
    assert master_key_from_env({}, tmp_path / "dev", allow_generate=False) == made  # kept, reused
    assert oct((tmp_path / "dev" / "master.key").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(KeyringError, match="32 bytes"):
        parse_master_key("c2hvcnQ=")


def test_the_cli_rotates_the_master_key_and_the_data_still_opens(tmp_path, monkeypatch, capsys):
    import base64
    import io

    from voice.cli import main

    old, new = os.urandom(32), os.urandom(32)
    ring = Keyring(old, tmp_path / "keyring.json")
    token = ring.seal("acme", b"derived data", aad="item_1")
    monkeypatch.setenv("SOMAGENT_AUDIO_VECTORS", str(tmp_path / "vectors"))
    monkeypatch.setenv("SOMAGENT_MASTER_KEY", base64.b64encode(old).decode())
    monkeypatch.setattr("sys.stdin", io.StringIO(base64.b64encode(new).decode() + "\n"))
    assert main(["rotate-master-key"]) == 0
    assert Keyring(new, tmp_path / "keyring.json").open("acme", token, aad="item_1") == b"derived data"
    monkeypatch.setattr("sys.stdin", io.StringIO("not a key\n"))
    assert main(["rotate-master-key"]) == 2  # refused, and nothing changed
    assert "32 bytes" in capsys.readouterr().err
