"""The fixtures of ``covalent_plugin_testing``, registered by its ``pytest_configure``
(this module imports pytest; the package itself does not)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cloudpickle
import pytest

from covalent_plugin_testing import own_paths
from covalent_plugin_testing.s3_server import S3Server, running_s3_server
from covalent_plugin_testing.server import CovalentServer, running_server
from covalent_plugin_testing.slurm_cluster import SlurmCluster, running_slurm_cluster
from covalent_plugin_testing.slurm_rest import SlurmRest, rest_config, running_slurm_rest
from covalent_plugin_testing.ssh_server import SSHServer, running_ssh_server


def interpreter_paths(python: str = sys.executable) -> set[Path]:
    """The folders of the ``sys.path`` that ``python`` starts with by itself (without
    ``PYTHONPATH``): its standard library, its site-packages and the folders that
    ``.pth`` files there add, such as the ``src`` folder of an editable install."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    listed = subprocess.run(
        [python, "-c", "import sys; print(*sys.path, sep='\\n')"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return {Path(line).resolve() for line in listed.stdout.splitlines() if line}


def import_folder(module: ModuleType) -> Path | None:
    """The folder from which ``module``'s source file imports under the module's name
    (for ``tests/test_x.py`` named ``tests.test_x``, the folder holding ``tests``), or
    None if the name leads to the file from no folder."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    path = Path(file)
    parts = path.parent.parts if path.name == "__init__.py" else path.with_suffix("").parts
    names = tuple(module.__name__.split("."))
    if len(parts) <= len(names) or parts[-len(names) :] != names:
        return None
    return Path(*parts[: -len(names)])


def _session_modules() -> list[ModuleType]:
    return [m for m in list(sys.modules.values()) if isinstance(m, ModuleType)]


_PREFIXES = {Path(p).resolve() for p in (sys.prefix, sys.exec_prefix, sys.base_prefix)}


def _inside_an_environment(path: Path) -> bool:
    """Whether ``path`` is in this Python's environment (``.venv``, ``.tox``) or in
    a site-packages folder."""
    return "site-packages" in path.parts or any(path.is_relative_to(p) for p in _PREFIXES)


def importable_test_folders(rootpath: Path, own_folders: set[Path]) -> list[str]:
    """The folders inside ``rootpath`` from which the session imports its modules, which
    the server needs to import test modules too: those on ``sys.path`` (pytest's
    ``prepend`` and ``append`` import modes put test folders there, and so does the ini
    file's ``pythonpath``) and the folder of each module imported without them
    (``--import-mode=importlib``). Never ``own_folders`` (what this Python starts with,
    as the ``src`` folder that an editable install's ``.pth`` file adds) nor a folder
    inside an environment (``.venv``, ``.tox``): another Python, such as a Dask
    worker's, would import this one's packages from them."""
    rootpath = rootpath.resolve()
    module_folders = filter(None, map(import_folder, _session_modules()))
    folders = [Path(p).resolve() for p in sys.path if p]
    folders += [folder.resolve() for folder in module_folders]
    return list(
        dict.fromkeys(
            str(folder)
            for folder in folders
            if folder not in own_folders
            and folder.is_relative_to(rootpath)
            and not _inside_an_environment(folder)
        )
    )


def modules_without_import_folder(rootpath: Path) -> list[ModuleType]:
    """The modules of source files inside ``rootpath`` (outside environments) whose
    names lead to them from no folder, so that no other process can import them:
    pytest's ``importlib`` import mode makes such names up (``tests/v1.0/test_x.py``
    becomes ``tests.v1_0.test_x``)."""
    rootpath = rootpath.resolve()

    def needs_value(module: ModuleType) -> bool:
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not file.endswith(".py"):
            return False
        path = Path(file).resolve()
        return (
            path.is_relative_to(rootpath)
            and not _inside_an_environment(path)
            and import_folder(module) is None
        )

    return [module for module in _session_modules() if needs_value(module)]


@pytest.fixture(scope="session")
def covalent_server(pytestconfig: pytest.Config) -> Iterator[CovalentServer]:
    """A real ``covalent start --no-cluster`` for the whole session, in the session's
    temporary home, on the port the test process's client uses; stopped at the end,
    also when tests fail. It has ``.url``, ``.port``, ``.home`` and ``.env``.

    Covalent pickles a task function of an importable module by reference, so the
    server gets the folders from which the session imports its test modules on its
    ``PYTHONPATH`` (:func:`importable_test_folders`); the functions of modules whose
    names no other process can import (:func:`modules_without_import_folder`) are
    pickled by value for the session."""
    rootpath = pytestconfig.rootpath
    known = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    test_folders = importable_test_folders(rootpath, own_paths(pytestconfig))
    folders = dict.fromkeys([*test_folders, *known])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, folders))
    by_value = modules_without_import_folder(rootpath)
    for module in by_value:
        cloudpickle.register_pickle_by_value(module)
    home, port = Path(os.environ["HOME"]), int(os.environ["COVALENT_SVC_PORT"])
    try:
        with running_server(home, port) as server:
            yield server
    finally:
        for module in by_value:
            cloudpickle.unregister_pickle_by_value(module)


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
    daemon stopped at the end. It accepts the JSON Web Tokens of ``slurm_rest``
    (the lines of :func:`~covalent_plugin_testing.slurm_rest.rest_config`)."""
    folder = tmp_path_factory.mktemp("slurm")
    extra = rest_config(folder)
    with running_slurm_cluster(folder, memory_limits=True, extra_config=extra) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def slurm_rest(slurm_cluster: SlurmCluster) -> Iterator[SlurmRest]:
    """Slurm's REST API for ``slurm_cluster``, for the whole session: ``slurmrestd``
    (Debian's ``slurmrestd``) on a free port of 127.0.0.1, with JSON Web Token
    authentication. It has ``.url``, ``.user``, ``.token`` (valid for the session),
    ``.api_version`` (the highest the daemon serves, such as ``"v0.0.38"``),
    ``.headers()``, ``.path("ping")``, ``.request(method, path, body)``,
    ``.new_token()``, ``.expired_token()``, ``.bad_token()`` and ``.stopped()`` (the
    daemon stopped for the block, then started again on the same port)."""
    with running_slurm_rest(slurm_cluster) as rest:
        yield rest


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 object store for the whole session: OpenStack Swift with its s3api
    (Debian's ``swift``, ``swift-proxy``, ``swift-account``, ``swift-container`` and
    ``swift-object``) on free ports of 127.0.0.1, as the current user. It has
    ``.endpoint_url``, ``.region``, ``.access_key``, ``.secret_key``, ``.client()``
    (a boto3 client, Signature Version 4, path-style), ``.keys(bucket)`` and
    ``.stopped()`` (the endpoint stopped for the block, then started again on the
    same port); stopped at the end."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """The name of a new, empty bucket of ``s3_server`` for one test; removed after
    the test with every object in it."""
    name = s3_server.new_bucket()
    try:
        yield name
    finally:
        s3_server.remove_bucket(name)
