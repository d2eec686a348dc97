"""The rules of a plugin module and of Covalent's use of it, as the how-to states them,
checked in fresh Covalent clients (plugin loading is the same in the server) and on
real servers: defined-here classes, both spellings of the name attribute, class-name
clashes, the ignored entry point key, plugins that raise on import, task packing,
and a configured default that fails every task."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import toml

import timing_executor.timing
from covalent_plugin_testing.server import run_client, running_server

PLUGIN = """
from covalent.executor.base import BaseExecutor

{name_line}


class {class_name}(BaseExecutor):
    def run(self, function, args, kwargs, task_metadata):
        return function(*args, **kwargs)
"""

REPORT = """
import json
import covalent as ct
from covalent.executor import _executor_manager
names = ct.executor._executor_manager.list_executors(print_names=False)
classes = {n: c.__module__ for n, c in _executor_manager.executor_plugins_map.items()}
exported = getattr(ct.executor, "TimingExecutor", None)
print(json.dumps({"names": names, "classes": classes,
                  "TimingExecutor": exported.__module__ if exported else None}))
"""


def fresh_client(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    """``python -c code`` with a Covalent configuration of its own."""
    home = tmp_path / "client-home"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COVALENT_")}
    environment.update(HOME=str(home), COVALENT_CONFIG_DIR=str(home / "config"), **env)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def loaded(tmp_path: Path, **env: str) -> dict:
    done = fresh_client(tmp_path, REPORT, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # after Covalent's warnings, if any


def plugin_folder(tmp_path: Path, **modules: str) -> str:
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    return str(folder)


def test_only_a_class_defined_in_the_module_is_a_plugin(tmp_path):
    defined = PLUGIN.format(name_line='executor_plugin_name = "Here"', class_name="Here")
    imported = textwrap.dedent("""
        from defined_here import Here  # noqa
        executor_plugin_name = "Here"
    """)
    folder = plugin_folder(tmp_path, defined_here=defined, imported_here=imported)
    names = loaded(tmp_path, COVALENT_EXECUTOR_DIR=folder, PYTHONPATH=folder)["names"]
    assert "defined_here" in names and "imported_here" not in names


def test_both_spellings_of_the_name_attribute_work(tmp_path):
    lower = PLUGIN.format(name_line='executor_plugin_name = "Lower"', class_name="Lower")
    upper = PLUGIN.format(name_line='EXECUTOR_PLUGIN_NAME = "Upper"', class_name="Upper")
    folder = plugin_folder(tmp_path, lower_name=lower, upper_name=upper)
    names = loaded(tmp_path, COVALENT_EXECUTOR_DIR=folder)["names"]
    assert {"lower_name", "upper_name"} <= set(names)


def test_a_copy_named_like_an_installed_class_leaves_the_installed_one_exported(tmp_path):
    """The how-to's my_timing.py beside the installed package: both short names work,
    and covalent.executor.TimingExecutor is the installed class."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(timing_executor.timing.__file__, folder / "my_timing.py")
    report = loaded(tmp_path, COVALENT_EXECUTOR_DIR=str(folder))
    assert report["classes"]["timing"] == "timing_executor.timing"
    assert report["classes"]["my_timing"] == str(folder / "my_timing")
    assert report["TimingExecutor"] == "timing_executor.timing"


def test_the_entry_point_key_is_ignored_the_module_name_is_the_short_name(tmp_path):
    site = tmp_path / "site"
    (site / "odd_plugin").mkdir(parents=True)
    (site / "odd_plugin" / "__init__.py").write_text("")
    (site / "odd_plugin" / "module_name.py").write_text(
        PLUGIN.format(name_line='executor_plugin_name = "Odd"', class_name="Odd")
    )
    dist_info = site / "odd_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: odd-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[covalent.executor.executor_plugins]\nthe_key = odd_plugin.module_name\n"
    )
    names = loaded(tmp_path, PYTHONPATH=str(site))["names"]
    assert "module_name" in names and "the_key" not in names


def test_a_plugin_that_raises_on_import_breaks_import_covalent(tmp_path):
    folder = plugin_folder(tmp_path, broken="import no_such_dependency\n")
    done = fresh_client(tmp_path, "import covalent", COVALENT_EXECUTOR_DIR=folder)
    assert done.returncode != 0
    assert "ModuleNotFoundError: No module named 'no_such_dependency'" in done.stderr


PACKED = """
import covalent as ct


@ct.electron(executor="timing")
def add(x, y):
    return x + y


@ct.electron(executor="timing")
def total(values):
    return sum(values)


@ct.lattice
def workflow():
    return total([add(1, 2), add(3, 4)])


result = ct.get_result(ct.dispatch(workflow)(), wait=True)
nodes = result.lattice.transport_graph._graph.nodes
errors = {n["node_name"]: n["error"] for n in map(result.get_node_result, nodes)}
print(result.status, errors["total"])
"""


def packing_client(tmp_path, server, script: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh client with task packing on, dispatching to ``server``."""
    return fresh_client(
        tmp_path,
        script,
        COVALENT_ENABLE_TASK_PACKING="1",
        COVALENT_SVC_PORT=str(server.port),
        COVALENT_DISPATCHER_ADDR="127.0.0.1",
    )


@pytest.mark.server
def test_task_packing_fails_a_run_only_plugins_packed_tasks(covalent_server, tmp_path):
    """With packing on, a list argument's collecting node and its electron form one
    group; an executor without send/poll/receive cannot run a group."""
    done = packing_client(tmp_path, covalent_server, PACKED)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "FAILED Task packing not supported by executor plugin"


@pytest.mark.server
def test_a_managed_executor_may_leave_poll_to_the_base_class(covalent_server, tmp_path):
    """Covalent's ``local`` has send and receive but no poll of its own: the base
    class's ``NotImplementedError`` tells the server that the task group reports its
    end by itself (``run_task_group`` calls the server back), and the group runs."""
    from covalent.executor.base import BaseExecutor
    from covalent.executor.executor_plugins.local import LocalExecutor

    assert LocalExecutor.SUPPORTS_MANAGED_EXECUTION
    assert LocalExecutor.poll is BaseExecutor.poll
    with pytest.raises(NotImplementedError):
        asyncio.run(LocalExecutor().poll({}, None))
    on_local = PACKED.replace('executor="timing"', 'executor="local"')
    on_local = on_local.replace("@ct.lattice", '@ct.lattice(workflow_executor="local")')
    done = packing_client(tmp_path, covalent_server, on_local)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "COMPLETED None"


PACKED_COLLECTIONS = """
import covalent as ct


@ct.electron(executor="timing")
def pair():
    return [1, 2]


@ct.electron(executor="timing")
def number():
    return 1 + 2j


@ct.electron(executor="timing")
def show(value):
    return value


def indexed():
    return show(pair()[0])


def attribute():
    return show(number().real)


def unpacked():
    first, second = pair()
    return show(first)


for build in (indexed, attribute, unpacked):
    result = ct.get_result(ct.dispatch(ct.lattice(build))(), wait=True)
    errors = map(result.get_node_result, result.lattice.transport_graph._graph.nodes)
    packed = any("Task packing not supported" in str(node["error"]) for node in errors)
    print(build.__name__, result.status, packed)
"""


@pytest.mark.server
def test_task_packing_also_groups_indexing_attributes_and_unpacking(covalent_server, tmp_path):
    """``task()[i]``, ``task().attr`` and ``a, b = task()`` make nodes packed with
    the task they come from."""
    done = packing_client(tmp_path, covalent_server, PACKED_COLLECTIONS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-4:] == [
        "indexed FAILED True",
        "attribute FAILED True",
        "unpacked FAILED True",
        "",
    ]


#: An async plugin whose ``setup`` or ``cancel`` may be a plain function; its run()
#: says when it runs and holds until cancel() has written down the thread it runs in
#: (at most 60 s).
ASYNC_PLUGIN = """
import asyncio
import threading
import time
from pathlib import Path

from covalent.executor.base import AsyncBaseExecutor

executor_plugin_name = "{name}"
_EXECUTOR_PLUGIN_DEFAULTS = {{}}


class {name}(AsyncBaseExecutor):
    {setup}def setup(self, task_metadata):
        pass

    async def run(self, function, args, kwargs, task_metadata):
        Path({running!r}).touch()
        deadline = time.monotonic() + 60
        while not Path({log!r}).exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return function(*args, **kwargs)

    {cancel}def cancel(self, task_metadata, job_handle):
        Path({log!r}).write_text(threading.current_thread().name)
        return True
"""

ASYNC_RULES = """
from pathlib import Path
import covalent as ct
from tests.waiting import wait_until
from tests.workflows import add_multiply_workflow, dispatch_and_wait, node_ids_by_name
result = dispatch_and_wait(add_multiply_workflow("plain_setup"), 1, 2)
print(result.get_node_result(node_ids_by_name(result)["add"])["error"])
dispatch_id = ct.dispatch(add_multiply_workflow("plain_cancel"))(1, 2)
wait_until(Path({running!r}).exists, limit=60)
assert Path({running!r}).exists(), "the task's run() did not start within 60 s"
ct.cancel(dispatch_id)
result = ct.get_result(dispatch_id, wait=True)
print(result.get_node_result(node_ids_by_name(result)["add"])["status"])
"""


@pytest.mark.server
def test_an_async_plugins_setup_and_cancel_must_be_coroutines(tmp_path):
    """A plain ``def setup`` fails every task; a plain ``def cancel`` runs in the
    event loop's thread, blocking the server, and its answer is lost."""
    log, running = str(tmp_path / "cancel-thread"), str(tmp_path / "running")
    paths = {"log": log, "running": running}
    plugins = {
        "plain_setup": ASYNC_PLUGIN.format(name="PlainSetup", setup="", cancel="async ", **paths),
        "plain_cancel": ASYNC_PLUGIN.format(
            name="PlainCancel", setup="async ", cancel="", **paths
        ),
    }
    folder = plugin_folder(tmp_path, **plugins)
    with running_server(tmp_path / "home", extra_env={"COVALENT_EXECUTOR_DIR": folder}) as server:
        done = run_client(server, ASYNC_RULES.format(running=running))
    assert done.returncode == 0, done.stderr
    setup_error, cancelled_status = done.stdout.splitlines()[-2:]
    assert "object NoneType can't be used in 'await' expression" in setup_error
    assert Path(log).read_text() == "MainThread"
    assert cancelled_status == "COMPLETED"


INSTANCES = """
import covalent as ct
from covalent.executor import (
    ExtraKeyExecutor, GreetingExecutor, NoDefaultsExecutor, TimingExecutor
)
from tests.workflows import add_multiply_workflow, dispatch_and_wait, node_ids_by_name
executors = [
    TimingExecutor({path!r}), NoDefaultsExecutor(), ExtraKeyExecutor(), "greeting"
]
for executor in executors:
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    add = result.get_node_result(node_ids_by_name(result)["add"])
    print(result.status, result.result, add["error"])
"""

#: A plugin whose __init__ takes ``greeting``, with a Python default only; ``run``
#: returns it with the task's result.
GREETING = """
from covalent.executor.base import BaseExecutor

executor_plugin_name = "GreetingExecutor"
_EXECUTOR_PLUGIN_DEFAULTS = {}


class GreetingExecutor(BaseExecutor):
    def __init__(self, greeting="hello", **kwargs):
        super().__init__(**kwargs)
        self.greeting = greeting

    def run(self, function, args, kwargs, task_metadata):
        assert self.greeting == "hello"
        return function(*args, **kwargs)
"""


@pytest.mark.server
def test_the_server_builds_every_executor_from_its_section_first(tmp_path):
    """``plugin_class(**section)``, even for an instance: a configured default that
    fails fails every task; a plugin without _EXECUTOR_PLUGIN_DEFAULTS fails with
    KeyError, one whose section holds a key __init__ does not take with TypeError;
    an argument with a Python default may stay out of the section."""
    home = tmp_path / "home"
    config_file = home / ".config" / "covalent" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    section = {"timing_filepath": "/proc/timing.log"}
    config_file.write_text(toml.dumps({"executors": {"timing": section}}))
    no_defaults = PLUGIN.format(
        name_line='executor_plugin_name = "NoDefaultsExecutor"', class_name="NoDefaultsExecutor"
    )
    extra_key = GREETING.replace("GreetingExecutor", "ExtraKeyExecutor")
    extra_key = extra_key.replace("= {}", '= {"colour": "blue"}').replace(", **kwargs", "")
    extra_key = extra_key.replace("super().__init__(**kwargs)", "super().__init__()")
    folder = plugin_folder(
        tmp_path, no_defaults=no_defaults, extra_key=extra_key, greeting=GREETING
    )
    with running_server(home, extra_env={"COVALENT_EXECUTOR_DIR": folder}) as server:
        code = INSTANCES.format(path=str(tmp_path / "good.log"))
        done = run_client(server, code)
    assert done.returncode == 0, done.stderr
    timing, no_defaults_run, extra_key_run, greeting_run = done.stdout.splitlines()
    assert timing.startswith("FAILED ")
    assert "timing_filepath '/proc/timing.log' cannot be written" in timing
    assert (tmp_path / "good.log").read_text() == ""  # made by the client, never written
    assert no_defaults_run.startswith("FAILED ") and "'no_defaults'" in no_defaults_run
    assert extra_key_run.startswith("FAILED ")
    assert "__init__() got an unexpected keyword argument 'colour'" in extra_key_run
    assert greeting_run == "COMPLETED 6 None"


def test_both_plugin_folders_are_loaded_and_the_variable_only_seeds_the_setting(tmp_path):
    """``executor_dir`` in covalent.conf and ``COVALENT_EXECUTOR_DIR``: both folders'
    plugins load; the variable does not replace a setting the file already has."""
    config_folder = tmp_path / "from-config"
    variable_folder = tmp_path / "from-variable"
    for folder, name in ((config_folder, "Configured"), (variable_folder, "FromVariable")):
        folder.mkdir()
        source = PLUGIN.format(name_line=f'executor_plugin_name = "{name}"', class_name=name)
        (folder / f"{name.lower()}.py").write_text(source)
    config_file = tmp_path / "client-home" / "config" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(toml.dumps({"sdk": {"executor_dir": str(config_folder)}}))
    names = loaded(tmp_path, COVALENT_EXECUTOR_DIR=str(variable_folder))["names"]
    assert {"configured", "fromvariable"} <= set(names)
    assert toml.load(config_file)["sdk"]["executor_dir"] == str(config_folder)


def test_a_plugin_in_a_folder_cannot_be_imported_by_its_name(tmp_path):
    folder = plugin_folder(
        tmp_path, in_folder=PLUGIN.format(name_line='executor_plugin_name = "F"', class_name="F")
    )
    code = "import covalent\nimport in_folder"
    done = fresh_client(tmp_path, code, COVALENT_EXECUTOR_DIR=folder)
    assert "ModuleNotFoundError: No module named 'in_folder'" in done.stderr
    assert "in_folder" in loaded(tmp_path, COVALENT_EXECUTOR_DIR=folder)["names"]


def test_plugin_defaults_reach_existing_sections_and_empty_values_are_reset(tmp_path):
    """Every ``import covalent`` merges each plugin's defaults into covalent.conf key by
    key: a key the section lacks is added, a key set to "" gets its default back."""
    config_file = tmp_path / "client-home" / "config" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    section = {"timing_filepath": "", "colour": "kept"}
    config_file.write_text(toml.dumps({"executors": {"timing": section}}))
    done = fresh_client(tmp_path, "import covalent")
    assert done.returncode == 0, done.stderr
    merged = toml.load(config_file)["executors"]["timing"]
    expected = dict(timing_executor.timing._EXECUTOR_PLUGIN_DEFAULTS)
    expected["timing_filepath"] = str(tmp_path / "client-home" / ".cache/covalent/timing.log")
    assert merged == expected | {"colour": "kept"}
