"""``timing-executor new-plugin``: the project it makes, installed as its author
would into a new venv with Covalent and this package, passes its own tests (the
conformance suite on the kit's server) and leaves nothing behind; a bad name or a
folder in use is refused before any file is written."""

import subprocess
import sys
from pathlib import Path

import pytest

from covalent_plugin_testing.conformance import case_names
from covalent_plugin_testing.new_plugin import class_name, write_project
from tests.test_plugin_testing_kit import assert_passed_leaving_nothing, run_pytest
from timing_report.cli import main

REPOSITORY = Path(__file__).resolve().parents[1]


def pip(python: str, *arguments: str) -> None:
    done = subprocess.run(
        [python, "-m", "pip", "install", "-q", *arguments],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.server
def test_a_new_project_installed_in_a_new_venv_passes_its_tests(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip(python, "-c", str(REPOSITORY / "conf" / "constraints.txt"), f"{REPOSITORY}[test]")
    project = tmp_path / "covalent-my-cluster-plugin"
    made = subprocess.run(
        [str(venv / "bin" / "timing-executor"), "new-plugin", "my_cluster", str(project)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    pip(python, "--no-deps", "-e", str(project))
    done = run_pytest(
        project, tmp_path, "-p", "no:randomly", pytest_command=(python, "-m", "pytest")
    )
    assert_passed_leaving_nothing(done, tmp_path, len(case_names()) + 1)


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("My-Executor", "cannot be a short name: use lower-case letters"),
        ("class", "cannot be a short name"),
        ("timing", "is taken by Covalent or an installed plugin"),
        ("local", "is taken by Covalent or an installed plugin"),
    ],
)
def test_a_bad_name_is_refused_naming_it(tmp_path, capsys, name, said):
    assert main(["new-plugin", name, str(tmp_path / "project")]) == 2
    error = capsys.readouterr().err
    assert f"plugin name {name!r}" in error and said in error
    assert not (tmp_path / "project").exists()


def test_a_folder_in_use_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not empty: name a new folder"):
        write_project("my_cluster", tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_the_class_is_named_after_the_short_name():
    assert class_name("my_cluster") == "MyClusterExecutor"
    assert class_name("my_executor") == "MyExecutor"
