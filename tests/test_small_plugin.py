"""What the how-to's smallest plugin (docs_src/plugins/small_timing.py) does not
protect against: it calls the task in the Covalent server's own process.

On a server of its own: output lost to the server log, an error without its type
or traceback, a cancel that does not stop the task, and a ``sys.exit()`` in one
task that ends the whole server. Also the how-to's troubleshooting entry: a
``run()`` that returns a plain value leaves its dispatch RUNNING for ever.
"""

import shutil
import time
from pathlib import Path

import covalent as ct
import pytest
import requests

from covalent_plugin_testing.server import running_server
from tests.waiting import wait_for_pids
from tests.workflows import (
    add_multiply_workflow,
    misbehaving_workflow,
    node_ids_by_name,
    sleeping_workflow,
)

pytestmark = pytest.mark.server
REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_PLUGIN = REPO_ROOT / "docs_src" / "plugins" / "small_timing.py"
PLAIN_VALUE_PLUGIN = """
from covalent.executor.base import BaseExecutor

executor_plugin_name = "PlainValueExecutor"
_EXECUTOR_PLUGIN_DEFAULTS = {}


class PlainValueExecutor(BaseExecutor):
    def run(self, function, args, kwargs, task_metadata):
        return function(*args, **kwargs).get_deserialized()  # not what function returned
"""


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A server of its own with small_timing and plain_value; the last test ends it."""
    root = tmp_path_factory.mktemp("small")
    plugins = root / "plugins"
    plugins.mkdir()
    shutil.copy(SMALL_PLUGIN, plugins)
    (plugins / "plain_value.py").write_text(PLAIN_VALUE_PLUGIN)
    with running_server(
        root / "home", extra_env={"COVALENT_EXECUTOR_DIR": str(plugins)}
    ) as server:
        yield server


def run(server, workflow, *args):
    address = server.url
    dispatch_id = ct.dispatch(workflow, dispatcher_addr=address)(*args)
    return ct.get_result(dispatch_id, wait=True, dispatcher_addr=address)


def server_log(server) -> str:
    return (server.home / ".cache" / "covalent" / "covalent_ui.log").read_text()


def test_it_records_tasks_but_output_goes_to_the_server_log_and_errors_lose_their_type(
    small_server,
):
    result = run(small_server, misbehaving_workflow("small_timing", ["prints", "raises"]))
    nodes = {name: result.get_node_result(n) for name, n in node_ids_by_name(result).items()}
    assert str(nodes["prints"]["status"]) == "COMPLETED"
    assert not nodes["prints"]["stdout"]
    log = server_log(small_server)  # its Python stdout may still sit in a buffer
    assert "MARKER print to stderr\n" in log and "MARKER file descriptor 1\n" in log
    assert str(nodes["raises"]["status"]) == "FAILED"
    assert nodes["raises"]["error"] == "bad value 7"  # no type, no traceback
    assert not nodes["raises"]["stderr"]
    records = (small_server.home / "timing.log").read_text()
    assert f"in dispatch {result.dispatch_id} took" in records


def test_cancel_does_not_stop_a_running_task(small_server, tmp_path):
    address = small_server.url
    markers = tmp_path / "markers"
    markers.mkdir()
    workflow = sleeping_workflow("small_timing", str(markers), seconds=3)
    dispatch_id = ct.dispatch(workflow, dispatcher_addr=address)()
    (pid,) = wait_for_pids(markers, 1)
    ct.cancel(dispatch_id, dispatcher_addr=address)
    ct.get_result(dispatch_id, wait=True, dispatcher_addr=address)
    assert Path(f"/proc/{pid}").exists()  # the server: still running
    time.sleep(3.5)
    records = (small_server.home / "timing.log").read_text()
    assert f"in dispatch {dispatch_id} took" in records  # the nap ran to its end


def test_a_run_that_returns_a_plain_value_leaves_the_dispatch_running(small_server):
    address = small_server.url
    dispatch_id = ct.dispatch(add_multiply_workflow("plain_value"), dispatcher_addr=address)(1, 2)
    time.sleep(10)  # the two tasks take milliseconds
    result = ct.get_result(dispatch_id, dispatcher_addr=address)
    assert str(result.status) == "RUNNING"
    ct.cancel(dispatch_id, dispatcher_addr=address)


def test_one_task_calling_sys_exit_ends_the_whole_server(small_server):
    address = small_server.url
    ct.dispatch(misbehaving_workflow("small_timing", ["exits"]), dispatcher_addr=address)()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(small_server.url, timeout=2)
        except requests.ConnectionError:
            break
        time.sleep(0.2)
    with pytest.raises(requests.ConnectionError):
        ct.dispatch(sleeping_workflow("small_timing", "/tmp"), dispatcher_addr=address)()
