"""voice/siblings.py: who a worker is, read from the environment its supervisor gives it, and whose a call is."""

from __future__ import annotations

import pytest

from voice.config import Settings
from voice.siblings import WorkerIdentity, call_owner


def test_a_single_process_server_is_no_worker() -> None:
    assert WorkerIdentity.from_env({}) is None
    assert Settings.from_env({}).worker is None


def test_a_worker_reads_its_identity_and_admits_its_share() -> None:
    me = WorkerIdentity(1, 3, "/tmp/run", "tok")
    assert WorkerIdentity.from_env(me.env()) == me
    settings = Settings.from_env({**me.env(), "SOMAGENT_MAX_SESSIONS": "100"})
    assert settings.worker == me
    assert settings.capacity.max_sessions == 34  # ceil(100 / 3): the kernel spreads connections evenly
    assert Settings.from_env(me.env()).capacity.max_sessions == Settings.from_env({}).capacity.max_sessions  # per loop
    assert me.socket_path(0) == "/tmp/run/worker-0.sock"
    assert me.is_internal({"x-somagent-internal": "tok"}) and not me.is_internal({"x-somagent-internal": "to"})
    assert not me.is_internal({})


@pytest.mark.parametrize("env", [
    {"SOMAGENT_WORKER_INDEX": "2", "SOMAGENT_WORKER_COUNT": "2", "SOMAGENT_WORKER_DIR": "/r",
     "SOMAGENT_WORKER_TOKEN": "t"},
    {"SOMAGENT_WORKER_INDEX": "0", "SOMAGENT_WORKER_COUNT": "2", "SOMAGENT_WORKER_DIR": "/r"},
    {"SOMAGENT_WORKER_INDEX": "x", "SOMAGENT_WORKER_COUNT": "2", "SOMAGENT_WORKER_DIR": "/r",
     "SOMAGENT_WORKER_TOKEN": "t"},
])
def test_a_malformed_identity_is_refused_with_a_reason(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="SOMAGENT_WORKER"):
        WorkerIdentity.from_env(env)


def test_a_call_id_names_its_worker() -> None:
    me = WorkerIdentity(1, 2, "/r", "t")
    assert call_owner(me.call_id_prefix() + "abc") == 1
    assert call_owner("rtc_abcdef") is None  # a single-process server's id
    assert call_owner("rtc_w12_x") == 12
