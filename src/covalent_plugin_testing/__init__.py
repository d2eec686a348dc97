"""Test a Covalent executor plugin against a real Covalent server.

As a pytest plugin (``pytest_plugins = ["covalent_plugin_testing"]`` in a
``conftest.py``, or ``pytest -p covalent_plugin_testing``) it isolates the test
session in a temporary home folder (Covalent's configuration, cache and the
temporary files inside it, all removed at the end) and gives the session fixture
``covalent_server``: a real ``covalent start --no-cluster`` on a free port that the
test process's Covalent client talks to. The ini option ``covalent_executor_dir``
or ``--covalent-executor-dir DIR`` names a folder of plugin files that the server
and the client load; installed plugins load as usual.

Importing this package does not import Covalent.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from covalent_plugin_testing.dask_cluster import DaskCluster, running_dask_cluster
from covalent_plugin_testing.server import (
    CovalentServer,
    covalent_command,
    free_port,
    isolate_this_process,
    isolated_environment,
    run_client,
    running_server,
)

__all__ = [
    "CovalentServer",
    "DaskCluster",
    "covalent_command",
    "free_port",
    "isolate_this_process",
    "isolated_environment",
    "run_client",
    "running_dask_cluster",
    "running_server",
]

#: The temporary folder of each configured pytest session.
_session_roots: dict[Any, Path] = {}
#: The folders the Python of each configured session starts with by itself.
_own_paths: dict[Any, set[Path]] = {}


def own_paths(config: Any) -> set[Path]:
    """The folders of the ``sys.path`` that the Python of the session ``config`` starts
    with by itself (:func:`~covalent_plugin_testing.fixtures.interpreter_paths`), asked
    in the environment the session started in."""
    return _own_paths[config]


_EXECUTOR_DIR_HELP = "folder of executor plugin files the server and the client load"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("covalent", "Covalent server (covalent_plugin_testing)")
    group.addoption("--covalent-executor-dir", metavar="DIR", help=_EXECUTOR_DIR_HELP)
    parser.addini("covalent_executor_dir", f"{_EXECUTOR_DIR_HELP}, relative to the rootdir")


def executor_dir(config: Any) -> Path | None:
    """The plugin folder the command line or the ini file names, checked."""
    import pytest

    given = config.getoption("covalent_executor_dir")
    folder = Path(given).resolve() if given else None
    if folder is None and config.getini("covalent_executor_dir"):
        folder = config.rootpath / config.getini("covalent_executor_dir")
    if folder is not None and not folder.is_dir():
        raise pytest.UsageError(
            f"covalent_executor_dir {str(folder)!r} is not a folder: name the folder "
            "that holds your plugin modules (in the ini file, relative to the rootdir)."
        )
    return folder


def pytest_configure(config: Any) -> None:
    """Isolate this process before any test module imports Covalent."""
    import pytest

    if "covalent" in sys.modules:
        raise pytest.UsageError(
            "covalent was imported before covalent_plugin_testing could isolate the "
            "session, so it has read your own configuration: import covalent inside "
            "tests or fixtures, not at the top of conftest.py."
        )
    from covalent_plugin_testing import fixtures

    # Asked before the environment changes: HOME decides the user site-packages.
    _own_paths[config] = fixtures.interpreter_paths()
    root = Path(tempfile.mkdtemp(prefix="covalent-plugin-testing-"))
    folder = executor_dir(config)
    # Task functions defined in test modules are pickled by reference: the server
    # must import them as the tests do.
    paths = [str(config.rootpath), *filter(None, [os.environ.get("PYTHONPATH")])]
    extra = {"PYTHONPATH": os.pathsep.join(paths)}
    if folder is not None:
        extra["COVALENT_EXECUTOR_DIR"] = str(folder)
    os.environ.update(extra)
    _session_roots[config] = root
    isolate_this_process(root / "home", free_port())
    config.pluginmanager.register(fixtures, "covalent_plugin_testing.fixtures")


def pytest_unconfigure(config: Any) -> None:
    """Remove the session's temporary home, after every fixture has stopped: at once,
    or, if a test used ``multiprocessing``, at exit after it has removed its own
    folder in the home's ``tmp`` (else it prints a traceback)."""
    _own_paths.pop(config, None)
    root = _session_roots.pop(config, None)
    if root is None:
        return
    multiprocessing_util = sys.modules.get("multiprocessing.util")
    if multiprocessing_util is None:
        shutil.rmtree(root, ignore_errors=True)
    else:  # its folder's removal runs with priority -100; lower runs later
        remove = partial(shutil.rmtree, root, ignore_errors=True)
        multiprocessing_util.Finalize(None, remove, exitpriority=-101)
