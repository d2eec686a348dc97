"""The package's own dependencies give a working server: the how-to's "Every dispatch
answers HTTP 422".

Covalent 0.240.0 installed alone gets the newest FastAPI, and its server then
rejects every dispatch with 422; this package's wheel, installed alone (no
constraints file), keeps FastAPI below 0.132 and its server works; so does its sdist,
both built with ``python -m build`` as the docs say. Each installs from the package
index into a new venv, so each takes a minute or so.
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


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The wheel and the sdist that ``python -m build`` makes of this repository, as
    the docs tell readers to build them."""
    dist = tmp_path_factory.mktemp("dist")
    done = run(sys.executable, "-m", "build", "--outdir", str(dist), str(REPOSITORY))
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = dist.glob("timing_executor-*.whl")
    (sdist,) = dist.glob("timing_executor-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


#: What an installed package must bring: the six plugins by their entry points, the
#: test kit, and the console script (checked by running it on a record file).
INSTALLED = """
import covalent as ct
import covalent_plugin_testing
names = ct.executor._executor_manager.list_executors(print_names=False)
ours = {"timing", "async_timing", "dask_timing", "ssh_timing", "slurm_timing", "batch_timing"}
print(sorted(set(names) & ours))
"""


@pytest.mark.parametrize("artifact", ["wheel", "sdist"])
def test_the_built_package_alone_gives_a_working_server(built, artifact, tmp_path):
    """The wheel, or the sdist, installed alone (no constraints file) into a new venv:
    FastAPI below 0.132, every plugin registered, the kit importable, the report
    command installed, and a server that runs a task by short name."""
    python = python_with(tmp_path, str(built[artifact]))
    assert fastapi_version(python) < FIRST_BREAKING_FASTAPI

    with running_server(tmp_path / "home", python=python) as server:
        plugins = run_client(server, INSTALLED, python=python)
        client = run_client(server, client_code("timing"), python=python)
    assert plugins.stdout.split("\n")[-2] == str(
        ["async_timing", "batch_timing", "dask_timing", "slurm_timing", "ssh_timing", "timing"]
    ), plugins.stderr
    assert client.returncode == 0, client.stderr
    status, dispatch_id = client.stdout.split()
    assert status == "COMPLETED"
    records = tmp_path / "home" / ".cache" / "covalent" / "timing.log"
    assert dispatch_id in records.read_text()

    report = run(str(Path(python).parent / "timing-executor"), "report", str(records))
    assert report.returncode == 0, report.stderr
    assert dispatch_id in report.stdout
