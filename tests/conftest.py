"""Isolate the whole test session from the user's Covalent setup, and share one server.

This runs before any test module imports covalent, so every Covalent client in
this process reads and writes configuration only under a temporary home folder.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.covalent_server import free_port, isolate_this_process, running_server

SESSION_ROOT = Path(tempfile.mkdtemp(prefix="timing-executor-tests-"))
SESSION_HOME = SESSION_ROOT / "home"
SESSION_PORT = free_port()
isolate_this_process(SESSION_HOME, SESSION_PORT)
atexit.register(shutil.rmtree, SESSION_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def covalent_server():
    """A real Covalent server for the whole session, stopped even when tests fail."""
    with running_server(SESSION_HOME, SESSION_PORT) as server:
        yield server
