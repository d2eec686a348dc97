"""The task side stands alone: what runs where a task runs imports nothing of the
server side, so it can be sent by value to a machine that has only Covalent."""

import ast
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from covalent_plugin_testing.server import free_port, isolated_environment

SOURCES = Path(__file__).resolve().parents[1] / "src"
TASK_SIDE = SOURCES / "timing_executor" / "task_side"
SUBMODULES = sorted(path.stem for path in TASK_SIDE.glob("*.py") if path.stem != "__init__")
MODULES = ["timing_executor.task_side", *(f"timing_executor.task_side.{s}" for s in SUBMODULES)]
#: Modules no task-side module may import: the server side, the plugin modules,
#: and Covalent's server (its dispatcher and UI).
SERVER_SIDE = (
    "timing_executor.server_side",
    "timing_executor.timing",
    "timing_executor.async_timing",
    "timing_executor.dask_timing",
    "timing_executor.ssh_timing",
    "timing_executor.slurm_timing",
    "covalent_dispatcher",
    "covalent_ui",
)

IMPORTED = """
import json, sys
sys.path.insert(0, sys.argv[1])
import importlib
importlib.import_module(sys.argv[2])
print(json.dumps(sorted(sys.modules)))
"""


def imported_modules(node: ast.AST) -> set[str]:
    """The absolute names of the modules a source imports, in functions too."""
    names = set()
    for item in ast.walk(node):
        if isinstance(item, ast.Import):
            names.update(alias.name for alias in item.names)
        elif isinstance(item, ast.ImportFrom):
            assert item.level == 0, "relative imports hide where they lead"
            names.add(item.module)
    return names


def is_server_side(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in SERVER_SIDE)


def own_imports(module: str) -> set[str]:
    """The task-side modules ``module`` imports, directly or through another."""
    found, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = SOURCES / Path(*name.split("."))
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for imported in imported_modules(ast.parse(source.read_text(encoding="utf-8"))):
            if imported.startswith("timing_executor.") and imported not in found:
                found.add(imported)
                todo.append(imported)
    return found


def test_the_modules_are_found():
    assert {"timing_executor.task_side.launcher", "timing_executor.task_side.boot"} <= set(MODULES)


@pytest.mark.parametrize("path", sorted(TASK_SIDE.glob("*.py")), ids=lambda path: path.name)
def test_no_task_side_module_imports_the_server_side(path):
    imports = imported_modules(ast.parse(path.read_text(encoding="utf-8")))
    own = {name for name in imports if name.split(".")[0] == "timing_executor"}
    assert not {name for name in imports if is_server_side(name)}
    assert all(name.startswith("timing_executor.task_side.") for name in own), own


@pytest.mark.parametrize("module", MODULES)
def test_the_task_side_imports_alone_where_only_covalent_is_installed(
    module, covalent_only, tmp_path
):
    """In a Python with Covalent only and this package's folder on the path, each
    task-side module imports no server-side module: only the package's
    ``__init__`` (which imports ``covalent``) and task-side modules.

    The folder is copied alone: ``src`` also holds the ``egg-info`` a build leaves,
    whose entry points would make ``import covalent`` load the package's plugins."""
    path = tmp_path / "path"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(SOURCES / "timing_executor", path / "timing_executor", ignore=ignore)
    env = isolated_environment(tmp_path / "home", free_port())
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [covalent_only, "-c", IMPORTED, str(path), module],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert module in loaded
    ours = {name for name in loaded if name.split(".")[0] == "timing_executor"}
    expected = {"timing_executor", "timing_executor.task_side", module} | own_imports(module)
    assert ours == expected
    assert not [name for name in loaded if is_server_side(name)]
