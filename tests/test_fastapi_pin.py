"""Why conf/constraints.txt pins FastAPI: the how-to's "Every dispatch answers HTTP 422".

Covalent 0.240.0 installed without the pins gets the newest FastAPI, and its server
then rejects every dispatch with 422. (Every other server test runs the pinned
install, where dispatches work.) The test installs Covalent into a new venv from
the package index, so it takes about half a minute.
"""

import os
import subprocess
import sys

import pytest

from tests.covalent_server import run_client, running_server
from tests.workflows import client_code

pytestmark = pytest.mark.server
PINNED_FASTAPI = (0, 115, 12)


def run(*command: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900, **options
    )


@pytest.fixture(scope="module")
def unpinned_python(tmp_path_factory) -> str:
    """The Python of a new venv with ``pip install covalent==0.240.0`` and no constraints."""
    venv = tmp_path_factory.mktemp("unpinned") / "venv"
    run(sys.executable, "-m", "venv", str(venv)).check_returncode()
    python = str(venv / "bin" / "python")
    without_pins = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    installed = run(python, "-m", "pip", "install", "-q", "covalent==0.240.0", env=without_pins)
    assert installed.returncode == 0, installed.stderr
    return python


def test_without_the_pins_every_dispatch_answers_422(unpinned_python, tmp_path):
    version = run(unpinned_python, "-c", "import fastapi; print(fastapi.__version__)").stdout
    assert tuple(int(part) for part in version.split(".")[:3]) > PINNED_FASTAPI, version

    with running_server(tmp_path / "home", python=unpinned_python) as server:
        client = run_client(server, client_code("local"), python=unpinned_python)
    assert client.returncode != 0
    assert "422 Client Error: Unprocessable Entity" in client.stderr, client.stderr
