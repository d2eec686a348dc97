"""``timing-executor new-plugin NAME``: a plugin project that starts green.

The project holds a ``pyproject.toml`` whose entry point gives Covalent the short name
``NAME``; the executor module, which is this package's ``TimingExecutor`` under the
new name (each task in a process of its own, measured where it runs, on
``timing_executor``'s task side and server side); its tests, which run the
conformance suite on the kit's real server; a ``tox.ini`` and a CI script.
"""

import keyword
import re
from importlib.metadata import entry_points
from importlib.util import find_spec
from pathlib import Path
from string import Template

#: A short name: what users write in ``executor="NAME"`` and ``[executors.NAME]``.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*\Z")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "$camel: a Covalent executor plugin"
requires-python = ">=3.10"
# timing-executor is not on PyPI: install it from its clone first.
dependencies = ["covalent==0.240.0", "fastapi<0.132", "timing-executor"]

[project.optional-dependencies]
test = ["pytest>=8"]

# The short name Covalent's server and client load the module by.
[project.entry-points."covalent.executor.executor_plugins"]
$name = "$package.$name"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

CONFTEST = """\
# The kit: a real Covalent server for the session, isolated in a temporary home.
pytest_plugins = ["covalent_plugin_testing"]
"""

TEST_CONFORMANCE = '''\
"""The conformance suite on $camel, by its short name and as an instance."""

import pytest
from covalent_plugin_testing.conformance import ExecutorConformance


class Test${camel}ByShortName(ExecutorConformance):
    @pytest.fixture
    def executor(self):
        return "$name"


def test_a_task_leaves_one_record(covalent_server, tmp_path):
    import covalent as ct
    from $package.$name import $camel

    records = tmp_path / "records.log"
    executor = $camel(timing_filepath=records)

    @ct.electron(executor=executor)
    def add(x, y):
        return x + y

    @ct.lattice
    def workflow():
        return add(1, 2)

    result = ct.get_result(ct.dispatch(workflow)(), wait=True)
    assert result.result == 3, result.error
    assert records.read_text().count("took") == 1
'''

TOX = """\
[tox]
requires = tox>=4.11
env_list = py

[testenv]
description = the conformance suite on the kit's real Covalent server
# timing-executor is not on PyPI: TIMING_EXECUTOR names its clone (or a wheel).
deps = {env:TIMING_EXECUTOR:timing-executor}
extras = test
commands = pytest {posargs}
"""

CI = """\
#!/bin/bash
# What CI runs: the tests in tox, in a venv of their own. TIMING_EXECUTOR names
# timing-executor's clone or wheel (it is not on PyPI).
set -euo pipefail
cd "$$(dirname "$$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q "tox>=4.11"
.venv/bin/tox
"""

README = """\
# $distribution

`$camel` (short name `$name`), a Covalent executor plugin made by
`timing-executor new-plugin $name`: each task runs in a process of its own and its CPU
time is recorded, as the guide's `TimingExecutor` does. Change `run()` in
`src/$package/$name.py` to run tasks your way; the conformance suite in
`tests/` says what a user of the plugin would meet.

    python -m pip install /path/to/timing-executor   # not on PyPI
    python -m pip install -e ".[test]"
    python -m pytest

or `TIMING_EXECUTOR=/path/to/timing-executor bash .ci/run` (tox).
"""


#: Covalent's own short names; installed plugins give theirs by entry points.
COVALENTS_OWN = {"local", "dask"}


def taken_names() -> set[str]:
    """The short names Covalent and the installed plugins (this package's too) give."""
    plugins = entry_points(group="covalent.executor.executor_plugins")
    return COVALENTS_OWN | {plugin.name for plugin in plugins}


def distribution_name(name: str) -> str:
    """``my_cluster`` -> ``covalent-my-cluster-plugin``: the package, and the
    project's default folder."""
    return f"covalent-{name.replace('_', '-')}-plugin"


def check_name(name: str) -> str:
    """``name`` if it can be a new short name and a module name; else a ValueError."""
    if not NAME_PATTERN.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"plugin name {name!r} cannot be a short name: use lower-case letters, "
            "digits and underscores, starting with a letter, such as 'my_executor'."
        )
    if name in taken_names():
        raise ValueError(
            f"plugin name {name!r} is taken by Covalent or an installed plugin: choose another."
        )
    return name


def class_name(name: str) -> str:
    """``my_cluster`` -> ``MyClusterExecutor``; ``my_executor`` -> ``MyExecutor``."""
    camel = "".join(part.capitalize() for part in name.split("_"))
    return camel if camel.endswith("Executor") else camel + "Executor"


def executor_module(camel: str) -> str:
    """``timing_executor/timing.py`` with ``TimingExecutor`` renamed ``camel``, its
    docstring replaced and the docs' listing markers left out."""
    # The package's folder, found without importing it (which imports Covalent).
    source = (Path(find_spec("timing_executor").origin).parent / "timing.py").read_text()
    body = source.split('"""', 2)[2]
    lines = [line for line in body.splitlines() if "# --8<--" not in line]
    docstring = (
        f'"""{camel}: runs each task in a process of its own and records its CPU time.\n\n'
        "Made by ``timing-executor new-plugin`` from timing-executor's ``TimingExecutor``;\n"
        "the task's process, its supervisor and the measuring are ``timing_executor``'s\n"
        "task side, what stays in the server its server side. Change ``run()`` to run\n"
        'tasks your way.\n"""'
    )
    body = re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines).replace("TimingExecutor", camel))
    return docstring + body.rstrip() + "\n"


def write_project(name: str, folder: Path | str | None = None) -> Path:
    """Make the project of plugin ``name`` in ``folder`` (a new or empty folder;
    default :func:`distribution_name`); return it."""
    check_name(name)
    folder = Path(folder or distribution_name(name))
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{str(folder)!r} is not empty: name a new folder for the project.")
    camel = class_name(name)
    names = {
        "name": name,
        "camel": camel,
        "package": f"covalent_{name}_plugin",
        "distribution": distribution_name(name),
    }
    package = folder / "src" / names["package"]
    files = {
        "pyproject.toml": PYPROJECT,
        "conftest.py": CONFTEST,
        "tests/test_conformance.py": TEST_CONFORMANCE,
        "tox.ini": TOX,
        ".ci/run": CI,
        "README.md": README,
    }
    for path, template in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(template).substitute(names))
    (folder / ".ci" / "run").chmod(0o755)
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'"""{camel}, a Covalent executor plugin."""\n')
    (package / f"{name}.py").write_text(executor_module(camel))
    return folder
