"""Fixtures for the tests that run a real server: one shared developer-light server."""

import pytest

from tests.e2e.helpers import server_thread


@pytest.fixture(scope="session")
def server_url():
    """One developer-light server (embedded parts) shared by the tests that need no special settings."""
    with server_thread() as url:
        yield url
