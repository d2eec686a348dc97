"""What a user sees when the server stops and starts again while a dispatch runs:
Covalent 0.240.0 keeps no record of the work in flight. The task's process is
stopped with the server, the old dispatch never completes (it stays RUNNING, or
FAILED when the failure reached the database before the server stopped), and the
workflow dispatched again runs to its end: with this package's executors as with
Covalent's own ``local``. A remote task is stopped too (its Slurm job cancelled),
and nothing is left in its ``remote_workdir``; a batch job is cancelled through
the API, and nothing is left in the bucket."""

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import toml

from covalent_plugin_testing.server import run_client, running_server, stop_server
from tests.batch_parts import options_for, write_credentials
from tests.test_slurm_orphans import ending_slowly
from tests.waiting import wait_for_pids, wait_until, wait_until_gone

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


def restart_mid_dispatch(
    home: Path,
    markers: Path,
    executor: str,
    remote_side: Callable[[], dict[str, list]] | None = None,
) -> tuple[str, str]:
    """Stop the server while a task of ``executor`` sleeps, check that the task has
    stopped, start the server again and dispatch once more: the old dispatch's
    status and the new one's. ``remote_side()`` lists, by kind, what the task has on
    the remote side (its folder, its job): each kind must be there before the stop,
    and all gone within 10 s after it."""
    markers.mkdir()
    with running_server(home) as server:
        code = DISPATCH.format(executor=executor, markers=str(markers), seconds=60)
        dispatched = run_client(server, code)
        assert dispatched.returncode == 0, dispatched.stderr
        dispatch_id = dispatched.stdout.split()[-1]
        pids = wait_for_pids(markers, 1)
        if remote_side:
            before = remote_side()
            assert all(before.values()), f"before the stop, something is missing: {before}"
        stop_server(server.env)
        wait_until_gone(pids, limit=5)
        if remote_side:
            wait_until(lambda: not any(remote_side().values()), limit=10)
            assert remote_side() == {kind: [] for kind in before}
        with running_server(home, server.port) as restarted:
            code = AFTER_RESTART.format(
                dispatch_id=dispatch_id, executor=executor, markers=str(markers)
            )
            after = run_client(restarted, code)
    assert after.returncode == 0, after.stderr
    old, again = json.loads(after.stdout.splitlines()[-1])
    return old, again


@pytest.mark.parametrize("executor", ["timing", "async_timing", "local"])
def test_a_restart_stops_the_task_and_the_dispatch_is_not_resumed(tmp_path, executor):
    old, again = restart_mid_dispatch(tmp_path / "home", tmp_path / "markers", executor)
    assert old in ("RUNNING", "FAILED") and again == "COMPLETED"


@pytest.mark.parametrize("executor", ["ssh_timing", "slurm_timing"])
def test_a_restart_stops_the_remote_task_and_leaves_nothing_there(
    tmp_path, executor, ssh_login, slurm_cluster, covalent_only
):
    workdir = Path(tempfile.mkdtemp(dir=tmp_path))
    section = {"python_path": covalent_only, "remote_workdir": str(workdir)}
    if executor == "ssh_timing":
        section |= ssh_login
    else:
        section |= {"slurm_conf": str(slurm_cluster.conf), "poll_freq": 0.5}
        section = ending_slowly(section, tmp_path / "ends")  # 2 s to end once cancelled
    home = tmp_path / "home"
    write_config(home, executor, section)

    jobs_seen = set()

    def remote_side() -> dict[str, list]:
        there = {"in remote_workdir": [path.name for path in workdir.iterdir()]}
        if executor == "slurm_timing":
            there["Slurm jobs"] = slurm_cluster.job_ids()
            jobs_seen.update(there["Slurm jobs"])
        return there

    old, again = restart_mid_dispatch(home, tmp_path / "markers", executor, remote_side)
    assert old in ("RUNNING", "FAILED") and again == "COMPLETED"
    if executor == "slurm_timing":  # the cancelled job found its folder at its end
        assert jobs_seen and jobs_seen <= set((tmp_path / "ends").read_text().split())


def test_a_restart_cancels_the_batch_job_and_leaves_nothing_in_the_bucket(
    tmp_path, slurm_rest, slurm_cluster, s3_server, s3_bucket, token_file, covalent_only
):
    """The server stops while a ``batch_timing`` task runs: its job is cancelled
    through the API, and once it has ended its objects are removed."""
    section = options_for(slurm_rest, s3_server, s3_bucket, token_file, covalent_only, tmp_path)
    home = tmp_path / "home"
    write_config(home, "batch_timing", section)
    write_credentials(home, s3_server)

    def remote_side() -> dict[str, list]:
        return {
            "in the bucket": s3_server.keys(s3_bucket),
            "Slurm jobs": slurm_cluster.job_ids(),
            "job folders": list((tmp_path / "job-tmp").iterdir()),
        }

    markers = tmp_path / "markers"
    old, again = restart_mid_dispatch(home, markers, "batch_timing", remote_side)
    assert old in ("RUNNING", "FAILED") and again == "COMPLETED"


def write_config(home: Path, executor: str, section: dict) -> None:
    """The section of ``executor`` in the Covalent configuration under ``home``."""
    config_file = home / ".config" / "covalent" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(toml.dumps({"executors": {executor: section}}))
