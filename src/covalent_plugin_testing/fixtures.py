"""The fixtures of ``covalent_plugin_testing``, registered by its ``pytest_configure``
(this module imports pytest; the package itself does not)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from covalent_plugin_testing import startup_sys_path
from covalent_plugin_testing.server import CovalentServer, running_server
from covalent_plugin_testing.slurm_cluster import SlurmCluster, running_slurm_cluster
from covalent_plugin_testing.ssh_server import SSHServer, running_ssh_server


def importable_test_folders(rootpath: Path, known_at_start: set[str]) -> list[str]:
    """The folders under ``rootpath`` that pytest put on ``sys.path`` to import test
    modules (its default import mode): the server needs them too. Not those that were
    there when the session started (a ``src`` folder of an editable install, put there
    by a ``.pth`` file), nor the folders of an environment that lives in the project
    (``.venv``, ``.tox``): another Python would import this one's packages from them."""
    environments = {Path(p).resolve() for p in (sys.prefix, sys.exec_prefix, sys.base_prefix)}

    def is_test_folder(path: str) -> bool:
        folder = Path(path).resolve()
        return (
            path not in known_at_start
            and folder.is_relative_to(rootpath)
            and "site-packages" not in folder.parts
            and not any(folder.is_relative_to(prefix) for prefix in environments)
        )

    return [path for path in sys.path if path and is_test_folder(path)]


@pytest.fixture(scope="session")
def covalent_server(pytestconfig: pytest.Config) -> Iterator[CovalentServer]:
    """A real ``covalent start --no-cluster`` for the whole session, in the session's
    temporary home, on the port the test process's client uses; stopped at the end,
    also when tests fail. It has ``.url``, ``.port``, ``.home`` and ``.env``."""
    known = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    test_folders = importable_test_folders(pytestconfig.rootpath, startup_sys_path(pytestconfig))
    folders = dict.fromkeys([*test_folders, *known])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, folders))
    home, port = Path(os.environ["HOME"]), int(os.environ["COVALENT_SVC_PORT"])
    with running_server(home, port) as server:
        yield server


@pytest.fixture(scope="session")
def ssh_server_python() -> str:
    """The Python that tasks sent over SSH run (the ``python`` of ``ssh_server``):
    this one. Override this fixture in a ``conftest.py`` to test with another, such
    as a virtual environment with Covalent but not your plugin."""
    return sys.executable


@pytest.fixture(scope="session")
def ssh_server(
    tmp_path_factory: pytest.TempPathFactory, ssh_server_python: str
) -> Iterator[SSHServer]:
    """A real OpenSSH ``sshd`` for the whole session, as the current user on a free port
    of 127.0.0.1, with its own host key, a client key, ``authorized_keys`` and a
    ``known_hosts`` file (``.host``, ``.port``, ``.username``, ``.key_file``,
    ``.known_hosts``, ``.python``, ``.home``); stopped at the end with every process
    of its sessions. Needs Debian's ``openssh-server``."""
    with running_ssh_server(tmp_path_factory.mktemp("sshd"), ssh_server_python) as server:
        yield server


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A real single-node Slurm for the whole session (Debian's ``slurm-wlm`` and
    ``munge``, as the current user): ``munged``, ``slurmctld`` and ``slurmd`` on free
    loopback ports, with memory limits enforced (``--mem``), its state in the
    session's folder (``.conf`` is its ``slurm.conf``, ``.env`` the environment with
    ``SLURM_CONF`` for Slurm's commands, ``.partition``, ``.node``); every job and
    daemon stopped at the end."""
    folder = tmp_path_factory.mktemp("slurm")
    with running_slurm_cluster(folder, memory_limits=True) as cluster:
        yield cluster
