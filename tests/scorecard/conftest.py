"""The scorecard's executors: the conformance suite on Covalent's own ``local`` and
``dask``, covalent-ssh-plugin, covalent-slurm-plugin and this package's executors.

These classes hold no ``known_gaps``: each case's verdict is what it is. They run in
``tox -e scorecard`` (``python -m tests.scorecard.run``), one executor per pytest
process, which writes ``docs/reference/scorecard.json``; the default test run leaves
them out (set ``TIMING_EXECUTOR_SCORECARD=1`` to collect them by hand)."""

import os
from pathlib import Path

import pytest

ENABLED = os.environ.get("TIMING_EXECUTOR_SCORECARD") == "1"
_left_out: list[str] = []


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave this folder to ``tox -e scorecard`` (see the module docstring)."""
    if not ENABLED and collection_path.name.startswith("test_"):
        _left_out.append(collection_path.name)
        return True
    return None


def pytest_terminal_summary(terminalreporter) -> None:
    if _left_out:
        terminalreporter.write_line(
            f"tests/scorecard ({', '.join(sorted(_left_out))}) not collected here: "
            "it runs in `tox -e scorecard`."
        )
