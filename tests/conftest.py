"""Isolate the whole test session from the user's Covalent setup, and share one server.

This runs before any test module imports covalent, so every Covalent client in
this process reads and writes configuration only under a temporary home folder.
"""

import pytest

from tests.covalent_server import isolate_in_temporary_home, running_server

SESSION_HOME, SESSION_PORT = isolate_in_temporary_home("timing-executor-tests-")


@pytest.fixture(scope="session")
def covalent_server():
    """A real Covalent server for the whole session, stopped even when tests fail."""
    with running_server(SESSION_HOME, SESSION_PORT) as server:
        yield server
