"""What a user sees when the server stops and starts again while a dispatch runs:
Covalent 0.240.0 keeps no record of the work in flight. The task's process is
stopped with the server, the old dispatch never completes (it stays RUNNING, or
FAILED when the failure reached the database before the server stopped), and the
workflow dispatched again runs to its end: with this package's executors as with
Covalent's own ``local``."""

import json

import pytest

from covalent_plugin_testing.server import run_client, running_server, stop_server
from tests.waiting import wait_for_pids, wait_until_gone

pytestmark = pytest.mark.server

DISPATCH = """
import covalent as ct
from tests.workflows import sleeping_workflow
print(ct.dispatch(sleeping_workflow({executor!r}, {markers!r}, seconds={seconds}))())
"""

AFTER_RESTART = """
import json
import covalent as ct
from tests.workflows import sleeping_workflow
old = ct.get_result({dispatch_id!r}, wait=False)
again = ct.get_result(
    ct.dispatch(sleeping_workflow({executor!r}, {markers!r}, seconds=0))(), wait=True
)
print(json.dumps([str(old.status), str(again.status)]))
"""


@pytest.mark.parametrize("executor", ["timing", "async_timing", "local"])
def test_a_restart_stops_the_task_and_the_dispatch_is_not_resumed(tmp_path, executor):
    home, markers = tmp_path / "home", tmp_path / "markers"
    markers.mkdir()
    with running_server(home) as server:
        code = DISPATCH.format(executor=executor, markers=str(markers), seconds=60)
        dispatched = run_client(server, code)
        assert dispatched.returncode == 0, dispatched.stderr
        dispatch_id = dispatched.stdout.split()[-1]
        pids = wait_for_pids(markers, 1)
        stop_server(server.env)
        wait_until_gone(pids, limit=5)
        with running_server(home, server.port) as restarted:
            code = AFTER_RESTART.format(
                dispatch_id=dispatch_id, executor=executor, markers=str(markers)
            )
            after = run_client(restarted, code)
    assert after.returncode == 0, after.stderr
    old, again = json.loads(after.stdout.splitlines()[-1])
    assert old in ("RUNNING", "FAILED") and again == "COMPLETED"
