import os
import tempfile

import pytest

from tests.helpers import server_thread

# The router persists to SQLite; tests keep it out of ./data.
os.environ.setdefault("SOMAGENT_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='sgv-test-')}/router.db")
# Servers built from the environment run the embedded parts (pocketsphinx, espeak-ng, the offline responder): the
# tests of the turn loop, protocol and transports stay fast and their replies known. The local models' tests
# (tests/adapters/*, tests/router/test_defaults.py, tests/test_local_models.py) ask for them explicitly.
os.environ.setdefault("SOMAGENT_STACK", "light")


@pytest.fixture(scope="session")
def server_url():
    """One developer-light server (embedded parts) shared by the tests that need no special settings."""
    with server_thread() as url:
        yield url
