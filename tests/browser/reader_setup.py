"""A reader's setup: Covalent without this package, a plugin module copied into
the server's plugin folder, and a workflow script run by the reader's Python."""

import subprocess
from dataclasses import dataclass
from pathlib import Path

from covalent_plugin_testing.server import running_server

WORKFLOW_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class WorkflowRun:
    """What running the reader's workflow script left behind."""

    home: Path
    folder: Path
    stdout: str
    stderr: str
    returncode: int


def plugin_folder(home: Path) -> Path:
    """``<home>/.config/covalent/executor_plugins``, where Covalent looks for plugin modules."""
    return home / ".config" / "covalent" / "executor_plugins"


def run_workflow_with_copied_plugins(
    reader_python: str, home: Path, plugins: dict[str, str], workflow: str
) -> WorkflowRun:
    """Save ``plugins`` (module name -> copied text) in the plugin folder of a new
    server run by ``reader_python``, then run ``workflow`` with that Python as a
    client of that server, in an empty folder."""
    folder = plugin_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    for module, text in plugins.items():
        (folder / f"{module}.py").write_text(text, encoding="utf-8")
    workdir = home / "reader"
    workdir.mkdir()
    (workdir / "workflow.py").write_text(workflow, encoding="utf-8")
    with running_server(home, python=reader_python) as server:
        completed = subprocess.run(
            [reader_python, "workflow.py"],
            cwd=workdir,
            env=server.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=WORKFLOW_TIMEOUT_SECONDS,
        )
    return WorkflowRun(home, workdir, completed.stdout, completed.stderr, completed.returncode)
