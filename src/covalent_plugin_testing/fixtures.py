"""The fixtures of ``covalent_plugin_testing``, registered by its ``pytest_configure``
(this module imports pytest; the package itself does not)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from covalent_plugin_testing.server import CovalentServer, running_server


def test_module_folders(rootpath: Path) -> list[str]:
    """The folders under ``rootpath`` that pytest put on ``sys.path`` to import test
    modules (its default import mode): the server needs them too."""
    return [path for path in sys.path if path and Path(path).resolve().is_relative_to(rootpath)]


@pytest.fixture(scope="session")
def covalent_server(pytestconfig: pytest.Config) -> Iterator[CovalentServer]:
    """A real ``covalent start --no-cluster`` for the whole session, in the session's
    temporary home, on the port the test process's client uses; stopped at the end,
    also when tests fail. It has ``.url``, ``.port``, ``.home`` and ``.env``."""
    known = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    folders = dict.fromkeys([*test_module_folders(pytestconfig.rootpath), *known])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, folders))
    home, port = Path(os.environ["HOME"]), int(os.environ["COVALENT_SVC_PORT"])
    with running_server(home, port) as server:
        yield server
