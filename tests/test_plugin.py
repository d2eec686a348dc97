"""The installed package registers its three plugins with Covalent, whatever the import order."""

import subprocess
import sys

import pytest

REGISTERED = """
{first_import}
import covalent as ct
from covalent.executor import AsyncTimingExecutor, DaskTimingExecutor, TimingExecutor
names = ct.executor._executor_manager.list_executors(print_names=False)
assert {{"timing", "async_timing", "dask_timing"}} <= set(names), names
assert ct.executor.TimingExecutor is TimingExecutor
assert TimingExecutor.__module__ == "timing_executor.timing"
assert AsyncTimingExecutor.__module__ == "timing_executor.async_timing"
assert DaskTimingExecutor.__module__ == "timing_executor.dask_timing"
print("registered")
"""


@pytest.mark.parametrize(
    "first_import",
    [
        "",
        "import timing_executor.timing",
        "import timing_executor.async_timing",
        "from timing_executor.timing import TimingExecutor",
        "import timing_executor.dask_timing",
    ],
)
def test_plugins_are_registered_in_a_fresh_process(first_import):
    completed = subprocess.run(
        [sys.executable, "-c", REGISTERED.format(first_import=first_import)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.stdout.strip() == "registered", completed.stderr


def test_short_names_build_executors_from_plugin_defaults():
    from covalent.executor import _executor_manager

    from timing_executor import async_timing, dask_timing, timing

    sync = _executor_manager.get_executor("timing")
    asynchronous = _executor_manager.get_executor("async_timing")
    on_dask = _executor_manager.get_executor("dask_timing")
    assert isinstance(sync, timing.TimingExecutor)
    assert isinstance(asynchronous, async_timing.AsyncTimingExecutor)
    assert isinstance(on_dask, dask_timing.DaskTimingExecutor)
    for executor in (sync, asynchronous, on_dask):
        assert executor.timing_filepath == timing.DEFAULT_TIMING_FILEPATH


@pytest.mark.parametrize(
    "module_name",
    ["timing_executor.timing", "timing_executor.async_timing", "timing_executor.dask_timing"],
)
def test_plugin_module_has_every_constructor_default(module_name):
    import importlib
    import inspect

    module = importlib.import_module(module_name)
    executor_class = getattr(module, module.executor_plugin_name)
    parameters = inspect.signature(executor_class.__init__).parameters
    own = [
        p for p in parameters.values() if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    assert {p.name for p in own} == set(module._EXECUTOR_PLUGIN_DEFAULTS)
    assert all(p.default is not p.empty for p in own)


PLUGIN_MODULES = [
    "timing_executor.timing",
    "timing_executor.async_timing",
    "timing_executor.dask_timing",
    "timing_executor.ssh_timing",
    "timing_executor.slurm_timing",
    "timing_executor.batch_timing",
]


@pytest.mark.parametrize("module_name", PLUGIN_MODULES)
def test_an_empty_string_means_the_default_for_every_argument(module_name):
    """What a running server builds from a section whose keys are all set to "" (as
    Covalent passes them until a process imports covalent): the defaults, positional
    or keyword."""
    import importlib

    module = importlib.import_module(module_name)
    executor_class = getattr(module, module.executor_plugin_name)
    defaults = module._EXECUTOR_PLUGIN_DEFAULTS
    from_empty = executor_class(**dict.fromkeys(defaults, ""))
    from_defaults = executor_class(**defaults)
    first = next(iter(defaults))
    positional = executor_class("")
    for name in defaults:
        assert getattr(from_empty, name) == getattr(from_defaults, name), name
    assert getattr(positional, first) == getattr(from_defaults, first)
