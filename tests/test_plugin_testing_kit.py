"""covalent_plugin_testing as a plugin author uses it: the example project of the
"Test your plugin" page (docs_src/test_your_plugin) and projects of the layouts plugin
authors have, each run by pytest in a process of its own, with a fresh HOME and TMPDIR
that must stay empty, and its errors."""

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import psutil
import pytest

DOCS_SRC = Path(__file__).resolve().parents[1] / "docs_src"
EXAMPLE_PROJECT = DOCS_SRC / "test_your_plugin"


def run_pytest(
    project: Path,
    tmp_path: Path,
    *options: str,
    pytest_command: tuple[str, ...] = (sys.executable, "-m", "pytest"),
) -> subprocess.CompletedProcess:
    """``python -m pytest`` (or ``pytest_command``) in ``project``, with an empty HOME
    and TMPDIR of its own."""
    home, temporary = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temporary.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVALENT_", "XDG_"))}
    env.update(HOME=str(home), TMPDIR=str(temporary))
    env.pop("PYTHONPATH", None)
    command = [*pytest_command, "-p", "no:cacheprovider", "-q", *options]
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


def assert_passed_leaving_nothing(
    done: subprocess.CompletedProcess, tmp_path: Path, tests: int
) -> None:
    """``tests`` tests passed in the session of :func:`run_pytest`, and it left no file in
    its HOME and TMPDIR and no process."""
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{tests} passed" in done.stdout, done.stdout
    assert list((tmp_path / "home").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert processes_living_under(tmp_path) == []


def test_the_example_project_passes_and_leaves_nothing_behind(tmp_path):
    assert_passed_leaving_nothing(run_pytest(EXAMPLE_PROJECT, tmp_path), tmp_path, 4)


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
    install's ``.pth`` file put on ``sys.path``, must not reach another Python's path;
    the folder from which a module imported without ``sys.path`` imports does."""
    from covalent_plugin_testing.fixtures import importable_test_folders

    tests, src, checks = tmp_path / "tests", tmp_path / "src", tmp_path / "checks"
    site_packages = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages"
    monkeypatch.setattr(sys, "path", [str(tests), str(src), str(site_packages), "/elsewhere"])
    imported = ModuleType("tests.test_x")
    imported.__file__ = str(checks / "tests" / "test_x.py")
    monkeypatch.setitem(sys.modules, imported.__name__, imported)
    assert importable_test_folders(tmp_path, own_folders={src}) == [str(tests), str(checks)]


@pytest.mark.parametrize(
    ("name", "file", "folder"),
    [
        ("test_x", "tests/test_x.py", "tests"),
        ("tests.test_x", "tests/test_x.py", "."),
        ("tests", "tests/__init__.py", "."),
        ("tests.v1_0.test_x", "tests/v1.0/test_x.py", None),
        ("x", "tests/x.cpython-311-x86_64-linux-gnu.so", None),
    ],
)
def test_the_import_folder_is_where_a_modules_name_leads_to_its_file(name, file, folder):
    from covalent_plugin_testing.fixtures import import_folder

    root = Path("/project")
    module = ModuleType(name)
    module.__file__ = str(root / file)
    assert import_folder(module) == (None if folder is None else root / folder)


# Plugin projects of the layouts users have, each with task functions at the top of
# test modules, run in a session of their own against the kit's real server.

KIT_CONFTEST = 'pytest_plugins = ["covalent_plugin_testing"]\n'
SMALL_PLUGIN = {
    "pytest.ini": "[pytest]\ncovalent_executor_dir = plugins\n",
    "plugins/small_timing.py": (DOCS_SRC / "plugins" / "small_timing.py").read_text(),
}


def task_test_module(
    executor: str = "small_timing",
    expected: int = 3,
    task: str = "def add(x, y):\n    return x + y",
) -> str:
    """A test module that dispatches ``add``, a task function of the module's top."""
    return f"""import covalent as ct

{task}


def test_a_task_of_this_module_runs_on_the_server(covalent_server):
    @ct.lattice
    def workflow(x, y):
        return ct.electron(add, executor={executor!r})(x, y)

    result = ct.get_result(ct.dispatch(workflow)(1, 2), wait=True)
    node = result.get_node_result(0)
    assert result.result == {expected}, node["error"] or node["stderr"]
"""


LAYOUTS = {
    "conftest in the rootdir, tests in tests/": (
        {**SMALL_PLUGIN, "conftest.py": KIT_CONFTEST, "tests/test_tasks.py": task_test_module()},
        [],
    ),
    "conftest in tests/": (
        {
            **SMALL_PLUGIN,
            "tests/conftest.py": KIT_CONFTEST,
            "tests/test_tasks.py": task_test_module(),
        },
        [],
    ),
    "nested test folders with conftests, run by folder": (
        {
            **SMALL_PLUGIN,
            "tests/conftest.py": KIT_CONFTEST,
            "tests/unit/conftest.py": '"""Fixtures of the unit tests."""\n',
            "tests/unit/test_tasks.py": task_test_module(),
            "tests/integration/test_tasks_too.py": task_test_module(),
        },
        ["tests/unit", "tests/integration"],
    ),
    "tests/ a package": (
        {
            **SMALL_PLUGIN,
            "tests/__init__.py": "",
            "tests/conftest.py": KIT_CONFTEST,
            "tests/test_tasks.py": task_test_module(),
        },
        [],
    ),
    # tests.test_tasks imports from the rootdir; the made-up tests.v1_0.test_tasks from no
    # folder (its functions go by value); shared_tasks from the ini file's pythonpath.
    "--import-mode=importlib, pythonpath": (
        {
            **SMALL_PLUGIN,
            "pytest.ini": SMALL_PLUGIN["pytest.ini"]
            + "addopts = --import-mode=importlib\npythonpath = tests/shared\n",
            "tests/conftest.py": KIT_CONFTEST,
            "tests/test_tasks.py": task_test_module(),
            "tests/v1.0/test_tasks.py": task_test_module(),
            "tests/shared/shared_tasks.py": "def add(x, y):\n    return x + y\n",
            "tests/test_shared_tasks.py": task_test_module(task="from shared_tasks import add"),
        },
        [],
    ),
}


def write_project(folder: Path, files: dict[str, str]) -> Path:
    """``folder`` with ``files`` (path inside it: text) written in it."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def count_test_modules(files: dict[str, str]) -> int:
    """How many of ``files`` are test modules (one test each)."""
    return sum(Path(name).name.startswith("test_") for name in files)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_task_functions_of_test_modules_run_on_the_server_in_every_layout(layout, tmp_path):
    files, options = LAYOUTS[layout]
    project = write_project(tmp_path / "project", files)
    command = (str(Path(sys.executable).parent / "pytest"),)
    done = run_pytest(project, tmp_path, *options, pytest_command=command)
    assert_passed_leaving_nothing(done, tmp_path, count_test_modules(files))


SERVER_PATH_TEST = """import os
from pathlib import Path

import covalent as ct

PROJECT = Path(__file__).resolve().parents[1]


def server_path():
    return os.environ["PYTHONPATH"].split(os.pathsep)


def test_the_server_gets_the_tests_folder_not_src_nor_the_venv(covalent_server):
    @ct.lattice
    def workflow():
        return ct.electron(server_path, executor="local")()

    result = ct.get_result(ct.dispatch(workflow)(), wait=True)
    node = result.get_node_result(0)  # local puts a task's error in its stderr
    assert result.result, node["error"] or node["stderr"]
    assert str(PROJECT / "tests") in result.result
    for folder in (PROJECT / "src", PROJECT / ".venv"):
        assert not [f for f in result.result if Path(f).is_relative_to(folder)], result.result
"""

EDITABLE_PLUGIN_PROJECT = {
    "pyproject.toml": """[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "layout-plugin"
version = "0.1"

[project.entry-points."covalent.executor.executor_plugins"]
doubling = "layout_plugin.doubling"

[tool.pytest.ini_options]
testpaths = ["tests"]
""",
    "src/layout_plugin/__init__.py": "",
    "src/layout_plugin/doubling.py": (DOCS_SRC / "plugins" / "doubling.py").read_text(),
    "tests/conftest.py": KIT_CONFTEST,
    "tests/test_tasks.py": task_test_module(executor="doubling", expected=6),
    "tests/test_server_path.py": SERVER_PATH_TEST,
}


def write_console_script(venv: Path, name: str) -> Path:
    """The command ``name`` of this environment's packages in ``venv``'s ``bin``, as
    pip writes it."""
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name=name)
    script = venv / "bin" / name
    script.write_text(
        f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom {entry.module} import {entry.attr}\n"
        f"sys.exit({entry.attr}())\n"
    )
    script.chmod(0o755)
    return script


def venv_with_editable_install(project: Path) -> Path:
    """``project/.venv`` with ``pip install -e project`` (its ``.pth`` file puts
    ``src`` on ``sys.path``). The venv gets this environment's packages by a ``.pth``
    line naming its site-packages (nothing is downloaded) and their commands
    ``pytest`` and ``covalent``, which the kit starts beside the venv's Python."""
    venv = project / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    Path(purelib.stdout.strip(), "this_environment.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    for name in ("pytest", "covalent"):
        write_console_script(venv, name)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
         "--no-build-isolation", "-e", str(project)],
        check=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return venv


def test_an_editable_src_layout_plugin_runs_its_tasks_and_keeps_src_to_itself(tmp_path):
    """A plugin project as ``pip install -e`` makes it: its ``src`` folder is on the
    venv's path by a ``.pth`` file, the server loads the plugin by its entry point and
    imports the test modules, and neither ``src`` nor ``.venv`` reaches its PYTHONPATH."""
    from covalent_plugin_testing.fixtures import interpreter_paths

    project = write_project(tmp_path / "project", EDITABLE_PLUGIN_PROJECT)
    venv = venv_with_editable_install(project)
    assert (project / "src").resolve() in interpreter_paths(str(venv / "bin" / "python"))
    done = run_pytest(project, tmp_path, pytest_command=(str(venv / "bin" / "pytest"),))
    assert_passed_leaving_nothing(done, tmp_path, 2)
