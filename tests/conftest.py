import os
import tempfile

import pytest

from tests.helpers import server_thread

# The router persists to SQLite; tests keep it out of ./data.
os.environ.setdefault("SOMAGENT_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='sgv-test-')}/router.db")


@pytest.fixture(scope="session")
def server_url():
    """One developer-light server (embedded parts) shared by the tests that need no special settings."""
    with server_thread() as url:
        yield url
