"""What the how-to's smallest plugin (docs_src/plugins/small_timing.py) does not
protect against: it calls the task in the Covalent server's own process.

On a server of its own: output lost to the server log, an error without its type
or traceback, a cancel that does not stop the task, and a ``sys.exit()`` in one
task that ends the whole server. Also the how-to's troubleshooting entry: a
``run()`` that returns a plain value leaves its dispatch RUNNING for ever.
"""

import re
import shutil
import time
from pathlib import Path

import covalent as ct
import psutil
import pytest
import requests

from covalent_plugin_testing.server import running_server
from tests.waiting import held_workflow, wait_until
from tests.workflows import (
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


def plugin_folder(root: Path) -> Path:
    """A new folder in ``root`` with small_timing and plain_value, for
    ``COVALENT_EXECUTOR_DIR``."""
    plugins = root / "plugins"
    plugins.mkdir()
    shutil.copy(SMALL_PLUGIN, plugins)
    (plugins / "plain_value.py").write_text(PLAIN_VALUE_PLUGIN)
    return plugins


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A server of its own with small_timing and plain_value; the last test ends it."""
    root = tmp_path_factory.mktemp("small")
    env = {"COVALENT_EXECUTOR_DIR": str(plugin_folder(root))}
    with running_server(root / "home", extra_env=env) as server:
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


def serving_process(server) -> int:
    """The id of the process that listens on ``server``'s port: the server itself."""
    (pid,) = {
        connection.pid
        for connection in psutil.net_connections("tcp")
        if connection.laddr.port == server.port and connection.status == psutil.CONN_LISTEN
    }
    return pid


def test_cancel_does_not_stop_a_running_task(tmp_path):
    """The task runs in the server's own process. On the cancel, the server calls the
    plugin's cancel(), BaseExecutor's, which does nothing but log so at debug level;
    the task, held until then, runs on to its end. A server of its own runs at that
    level, since it also gives failed nodes the traceback the first test says they lack."""
    started, release, ended = tmp_path / "started", tmp_path / "release", tmp_path / "ended"
    workflow = held_workflow("small_timing", tmp_path)
    env = {"COVALENT_EXECUTOR_DIR": str(plugin_folder(tmp_path)), "LOGLEVEL": "DEBUG"}
    with running_server(tmp_path / "home", extra_env=env) as server:
        dispatch_id = ct.dispatch(workflow, dispatcher_addr=server.url)()
        wait_until(started.exists, limit=60)
        assert started.exists(), "the task did not start within 60 s"
        ct.cancel(dispatch_id, dispatcher_addr=server.url)
        did_nothing = re.compile(r"Cancel not implemented for executor <class '\S*small_timing\.")
        wait_until(lambda: did_nothing.search(server_log(server)), limit=60)
        assert did_nothing.search(server_log(server)), "small_timing's cancel() was not called"
        assert not ended.exists()
        release.touch()
        wait_until(ended.exists, limit=30)
        assert ended.exists(), "the task did not run to its end after the cancel"
        assert int(started.read_text()) == serving_process(server)
        ct.get_result(dispatch_id, wait=True, dispatcher_addr=server.url)
        records = (server.home / "timing.log").read_text()
    assert f"in dispatch {dispatch_id} took" in records


def test_a_run_that_returns_a_plain_value_leaves_the_dispatch_running(small_server, tmp_path):
    """The task runs and returns; the server cannot store what run() returned (its log
    says so), and the dispatch stays RUNNING."""
    address = small_server.url
    ran = tmp_path / "ran"

    @ct.electron(executor="plain_value")
    def add(x, y):
        ran.touch()
        return x + y

    @ct.lattice
    def workflow(x, y):
        return add(x, y)

    dispatch_id = ct.dispatch(workflow, dispatcher_addr=address)(1, 2)
    wait_until(ran.exists, limit=60)
    assert ran.exists(), "the task did not run within 60 s"
    not_stored = "Error persisting node update: 'int' object has no attribute 'serialize'"
    wait_until(lambda: not_stored in server_log(small_server), limit=60)
    assert not_stored in server_log(small_server)
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
