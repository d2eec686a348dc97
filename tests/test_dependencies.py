"""The package's own dependencies give a working server: the how-to's "Every dispatch
answers HTTP 422".

Covalent 0.240.0 installed alone gets the newest FastAPI, and its server then
rejects every dispatch with 422; this package's wheel, installed alone (no
constraints file), keeps FastAPI below 0.132 and its server works. Both install
from the package index into new venvs, so each takes a minute or so.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from covalent_plugin_testing.server import run_client, running_server
from tests.workflows import client_code

pytestmark = pytest.mark.server
FIRST_BREAKING_FASTAPI = (0, 132, 0)
REPOSITORY = Path(__file__).resolve().parents[1]


def run(*command: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900, **options
    )


def python_with(folder: Path, *requirements: str) -> str:
    """The Python of a new venv with ``pip install`` of ``requirements`` and no
    constraints file."""
    venv = folder / "venv"
    run(sys.executable, "-m", "venv", str(venv)).check_returncode()
    python = str(venv / "bin" / "python")
    without_pins = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    installed = run(python, "-m", "pip", "install", "-q", *requirements, env=without_pins)
    assert installed.returncode == 0, installed.stderr
    return python


def fastapi_version(python: str) -> tuple[int, ...]:
    version = run(python, "-c", "import fastapi; print(fastapi.__version__)").stdout
    return tuple(int(part) for part in version.split(".")[:3])


def test_covalent_alone_gets_a_fastapi_whose_server_answers_422(tmp_path):
    python = python_with(tmp_path, "covalent==0.240.0")
    assert fastapi_version(python) >= FIRST_BREAKING_FASTAPI

    with running_server(tmp_path / "home", python=python) as server:
        client = run_client(server, client_code("local"), python=python)
    assert client.returncode != 0
    assert "422 Client Error: Unprocessable Entity" in client.stderr, client.stderr


def test_the_wheel_alone_gives_a_working_server(tmp_path):
    wheels = tmp_path / "wheels"
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                str(REPOSITORY))  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("timing_executor-*.whl")
    python = python_with(tmp_path, str(wheel))
    assert fastapi_version(python) < FIRST_BREAKING_FASTAPI

    with running_server(tmp_path / "home", python=python) as server:
        client = run_client(server, client_code("timing"), python=python)
    assert client.returncode == 0, client.stderr
    status, dispatch_id = client.stdout.split()
    assert status == "COMPLETED"
    assert dispatch_id in (tmp_path / "home" / ".cache" / "covalent" / "timing.log").read_text()
