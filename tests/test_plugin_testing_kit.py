"""covalent_plugin_testing as a plugin author uses it: the example project of the
"Test your plugin" page (docs_src/test_your_plugin) run by pytest in a process of
its own, with a fresh HOME and TMPDIR that must stay empty, and its errors."""

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

EXAMPLE_PROJECT = Path(__file__).resolve().parents[1] / "docs_src" / "test_your_plugin"


def run_pytest(project: Path, tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    """``python -m pytest`` in ``project``, with an empty HOME and TMPDIR of its own."""
    home, temporary = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temporary.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVALENT_", "XDG_"))}
    env.update(HOME=str(home), TMPDIR=str(temporary))
    env.pop("PYTHONPATH", None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *options]
    return subprocess.run(
        command,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def processes_living_under(folder: Path) -> list[psutil.Process]:
    """Processes whose HOME is ``folder`` or inside it."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("HOME", "").startswith(str(folder)):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def test_the_example_project_passes_and_leaves_nothing_behind(tmp_path):
    done = run_pytest(EXAMPLE_PROJECT, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert list((tmp_path / "home").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert processes_living_under(tmp_path) == []


def test_a_missing_executor_folder_is_named_with_the_fix(tmp_path):
    done = run_pytest(EXAMPLE_PROJECT, tmp_path, "--covalent-executor-dir", "no-such-folder")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "covalent_executor_dir" in done.stderr and "no-such-folder" in done.stderr
    assert "is not a folder" in done.stderr


def test_covalent_imported_before_the_kit_is_an_error(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(
        'import covalent\n\npytest_plugins = ["covalent_plugin_testing"]\n'
    )
    (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    done = run_pytest(project, tmp_path)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "import covalent inside tests or fixtures" in done.stderr


def test_importing_the_kit_does_not_import_covalent():
    code = "import sys, covalent_plugin_testing; print('covalent' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_the_servers_path_holds_test_folders_not_environments(tmp_path, monkeypatch):
    """A ``.venv`` or ``.tox`` inside the project, or the ``src`` folder an editable
    install put on ``sys.path``, must not reach another Python's path."""
    from covalent_plugin_testing.fixtures import importable_test_folders

    tests, src = tmp_path / "tests", tmp_path / "src"
    site_packages = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages"
    paths = [str(tests), str(src), str(site_packages), "/elsewhere"]
    monkeypatch.setattr(sys, "path", paths)
    assert importable_test_folders(tmp_path, known_at_start={str(src)}) == [str(tests)]
