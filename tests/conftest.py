"""Fixtures for every test: the router's database kept out of ./data, and the fake streaming chat server
(the router's failover tests and the end-to-end dialogue tests both talk to it)."""

import os
import tempfile
from collections.abc import Iterator

import pytest

from tests.router.fake_chat_server import FakeChatServer

# The router persists to SQLite; tests keep it out of ./data.
os.environ.setdefault("SOMAGENT_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='sgv-test-')}/router.db")
# Servers built from the environment run the embedded parts (pocketsphinx, espeak-ng, the offline responder): the
# tests of the turn loop, protocol and transports stay fast and their replies known. The local models' tests
# (tests/adapters/*, tests/router/test_defaults.py, tests/e2e/test_local_models.py) ask for them explicitly.
os.environ.setdefault("SOMAGENT_STACK", "light")
# No nightly capsule runs inside test servers (a suite running across 03:00 UTC would start one).
os.environ.setdefault("SOMAGENT_CAPSULES_SCHEDULE", "off")
# Nor DNSMOS of sampled live sentences (CPU in threads beside timing-sensitive tests); its own test turns it on.
os.environ.setdefault("SOMAGENT_DNSMOS_SAMPLE_EVERY", "0")


@pytest.fixture(scope="session")
def chat_server() -> Iterator[FakeChatServer]:
    server = FakeChatServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_chat(chat_server: FakeChatServer) -> Iterator[FakeChatServer]:
    chat_server.reset()
    yield chat_server
    chat_server.reset()
