"""A reader's setup: Covalent without this package (or with its source folder on
the path), a plugin module copied into the server's plugin folder, and a workflow
script run by the reader's Python."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from covalent_plugin_testing.server import running_server
from tests.browser.site import REPOSITORY

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
    reader_python: str,
    home: Path,
    plugins: dict[str, str],
    workflow: str,
    *,
    with_package: bool = False,
) -> WorkflowRun:
    """Save ``plugins`` (module name -> copied text) in the plugin folder of a new
    server run by ``reader_python``, then run ``workflow`` with that Python as a
    client of that server, in an empty folder.

    ``with_package`` puts a copy of this package's folder on the server's and the
    client's path: ``timing_executor`` can be imported, as where it is installed,
    but its own plugins are not loaded (no entry points: the copy leaves out the
    ``egg-info`` a build leaves in ``src``), so the copied modules are the only
    plugins."""
    folder = plugin_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    for module, text in plugins.items():
        (folder / f"{module}.py").write_text(text, encoding="utf-8")
    workdir = home / "reader"
    workdir.mkdir()
    (workdir / "workflow.py").write_text(workflow, encoding="utf-8")
    extra_env = {}
    if with_package:
        package = home / "package" / "timing_executor"
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPOSITORY / "src" / "timing_executor", package, ignore=ignore)
        extra_env["PYTHONPATH"] = str(package.parent)
    with running_server(home, python=reader_python, extra_env=extra_env) as server:
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
