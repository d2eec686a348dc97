"""The jobs of a server that was killed (SIGKILL: a power loss, the OOM killer) keep
running, and their folders stay in ``remote_workdir``; once that server's lease has
expired, the next server that polls jobs there cancels them and removes the folders
(at its first poll), and no server touches the jobs of a server that lives beside
it: real Covalent servers sharing one ``remote_workdir`` and one Slurm account."""

import asyncio
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import covalent as ct
import pytest
import toml

from covalent_plugin_testing.server import kill_server, run_client, running_server
from covalent_plugin_testing.slurm_cluster import running_slurm_cluster
from tests.waiting import wait_until
from tests.workflows import error_of
from timing_executor.server_side.shells import LocalShell
from timing_executor.server_side.slurm_leases import (
    LEASE_PREFIX,
    OWNER,
    TASK_FOLDER_PREFIX,
    expired_lease,
    expired_leases,
    renew_lease,
)
from timing_executor.slurm_timing import SlurmTimingExecutor

pytestmark = pytest.mark.server

#: Seconds without a lease renewal after which the killed server counts as gone
#: (30 polls); the live one has more, as this busy machine may stall its polls.
ORPHAN_TIMEOUT, LIVE_ORPHAN_TIMEOUT = 15, 60
#: The cluster's partition that runs up to 4 jobs on each CPU: the three servers'
#: jobs run at once on a 2-CPU machine.
SHARED = "PartitionName=shared Nodes=localhost OverSubscribe=FORCE:4 State=UP"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_slurm_cluster(tmp_path_factory.mktemp("slurm"), extra_config=[SHARED]) as cluster:
        yield cluster


def waiting_workflow(executor, markers: str, release: str, tasks: int):
    """``tasks`` electrons that each write their process id to a file in
    ``markers``, then wait until the file ``release`` exists."""

    @ct.electron(executor=executor)
    def waits(index):
        import os
        import time
        from pathlib import Path

        Path(markers, str(index)).write_text(str(os.getpid()))
        while not Path(release).exists():
            time.sleep(0.1)
        return index

    @ct.lattice
    def workflow():
        return [waits(index) for index in range(tasks)]

    return workflow


DISPATCH = """
import covalent as ct
from tests.test_slurm_orphans import waiting_workflow
print(ct.dispatch(waiting_workflow("slurm_timing", {markers!r}, {release!r}, {tasks}))())
"""

RESULT = """
import covalent as ct
print(ct.get_result({dispatch_id!r}, wait=True).status)
"""

ONE_TASK = """
import covalent as ct
from tests.workflows import add_multiply_workflow, dispatch_and_wait
result = dispatch_and_wait(add_multiply_workflow("slurm_timing"), 1, 2)
print(result.status, result.result)
"""


def configured_home(home: Path, section: dict) -> Path:
    """``home`` with a covalent.conf whose ``[executors.slurm_timing]`` is ``section``."""
    config_file = home / ".config" / "covalent" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(toml.dumps({"executors": {"slurm_timing": section}}))
    return home


@pytest.fixture
def section(cluster, covalent_only, tmp_path) -> dict:
    """The servers' settings: one ``remote_workdir`` for all."""
    return {
        "python_path": covalent_only,
        "remote_workdir": str(tmp_path / "work dir"),
        "slurm_conf": str(cluster.conf),
        "options": {"partition": "shared"},
        "poll_freq": 0.5,
        "orphan_timeout": ORPHAN_TIMEOUT,
    }


def ending_slowly(section: dict, ends: Path) -> dict:
    """``section`` whose jobs run on for 2 s once cancelled (bash runs its trap,
    then the postrun lines), as a job that copies its outputs away at its end, and
    then write their id into the file ``ends`` if their folder is still there."""
    still_there = f'[ -e slurm.out ] && echo "$SLURM_JOB_ID" >> {shlex.quote(str(ends))}'
    return section | {
        "prerun_commands": ["trap true TERM"],
        "postrun_commands": ["sleep 2", still_there],
    }


def dispatch_waiting(server, markers: Path, release: Path, tasks: int) -> str:
    """Dispatch ``tasks`` waiting electrons to ``server``; return once they run."""
    markers.mkdir()
    code = DISPATCH.format(markers=str(markers), release=str(release), tasks=tasks)
    dispatched = run_client(server, code)
    assert dispatched.returncode == 0, dispatched.stderr
    wait_until(lambda: len(list(markers.iterdir())) == tasks, limit=120)
    assert len(list(markers.iterdir())) == tasks, "the tasks did not start"
    return dispatched.stdout.split()[-1]


def jobs_in(cluster, folders: set[Path]) -> dict[str, str]:
    """The state of each job in the queue that runs in one of ``folders``."""
    listed = cluster.run("squeue", "--noheader", "--format=%i|%T|%Z", check=True)
    jobs = [line.split("|", 2) for line in listed.stdout.splitlines()]
    return {job_id: state for job_id, state, folder in jobs if Path(folder) in folders}


def owned(workdir: Path, prefix: str) -> set[Path]:
    return set(workdir.glob(prefix + "*"))


@dataclass(frozen=True)
class Killed:
    """What the killed server left: its task folders, jobs and lease, and the
    lease's time (this machine's clock is the cluster's)."""

    folders: set[Path]
    jobs: dict[str, str]
    lease: Path
    expiry: int

    def wait_until_expired(self) -> None:
        """Wait until the lease's time, ORPHAN_TIMEOUT s at most after the killed
        server's last poll, has passed."""
        wait_until(lambda: time.time() > self.expiry + 1, limit=ORPHAN_TIMEOUT + 5)


def kill_while_two_jobs_run(home: Path, workdir: Path, cluster, markers: Path) -> Killed:
    """Start a server, run two waiting tasks, kill it with SIGKILL; what it left,
    which is all there still: both jobs run, their folders and its lease stay."""
    before = owned(workdir, TASK_FOLDER_PREFIX), owned(workdir, LEASE_PREFIX)
    with running_server(home) as server:
        dispatch_waiting(server, markers, markers / "never", 2)
        kill_server(server.env)
    folders = owned(workdir, TASK_FOLDER_PREFIX) - before[0]
    (lease,) = owned(workdir, LEASE_PREFIX) - before[1]
    jobs = jobs_in(cluster, folders)
    assert len(folders) == 2 and set(jobs.values()) == {"RUNNING"}
    return Killed(folders, jobs, lease, int(lease.read_text()))


def assert_cancelled_and_removed(cluster, workdir: Path, killed: Killed) -> None:
    """Wait until the killed server's jobs have left the queue, CANCELLED, and its
    folders and lease are gone."""

    def left() -> list:
        folders = owned(workdir, TASK_FOLDER_PREFIX) & killed.folders
        lease = owned(workdir, LEASE_PREFIX) & {killed.lease}
        return [*jobs_in(cluster, killed.folders), *folders, *lease]

    wait_until(lambda: not left(), limit=30)
    assert left() == []
    for job_id in killed.jobs:
        assert cluster.job_info(job_id)["JobState"] == "CANCELLED"


def run_one_task(home: Path) -> None:
    """Start a server and run one workflow to its end."""
    with running_server(home) as server:
        done = run_client(server, ONE_TASK)
    assert done.stdout.split()[-2:] == ["COMPLETED", "6"], done.stderr


def test_the_next_servers_first_task_cancels_a_killed_servers_jobs(
    cluster, section, ssh_login, tmp_path
):
    """No server polls while the killed one's lease expires: its jobs still run. The
    next server's first task (submitted over SSH) cancels them at its first poll,
    before its own job is seen ended."""
    workdir = Path(section["remote_workdir"])
    killed = kill_while_two_jobs_run(
        configured_home(tmp_path / "a", section), workdir, cluster, tmp_path / "a-markers"
    )
    killed.wait_until_expired()
    assert jobs_in(cluster, killed.folders) == killed.jobs
    assert owned(workdir, TASK_FOLDER_PREFIX) == killed.folders

    run_one_task(configured_home(tmp_path / "b", section | ssh_login))
    assert_cancelled_and_removed(cluster, workdir, killed)
    assert list(workdir.iterdir()) == []


def test_a_killed_servers_jobs_have_ended_before_their_folders_go(cluster, section, tmp_path):
    """Jobs that take 2 s to end once cancelled still find their folders at their
    end: the next server removes a gone server's folders once its jobs have ended."""
    workdir, ends = Path(section["remote_workdir"]), tmp_path / "ends"
    killed = kill_while_two_jobs_run(
        configured_home(tmp_path / "a", ending_slowly(section, ends)),
        workdir,
        cluster,
        tmp_path / "a-markers",
    )
    killed.wait_until_expired()
    run_one_task(configured_home(tmp_path / "b", section))
    assert_cancelled_and_removed(cluster, workdir, killed)
    assert sorted(ends.read_text().split()) == sorted(killed.jobs)
    assert list(workdir.iterdir()) == []


def test_a_live_server_beside_is_never_touched(cluster, section, tmp_path):
    """A server runs a job all along, in the same remote_workdir as a server killed
    while two jobs run and as a server started after its death that runs one task:
    the killed server's jobs are cancelled (by whichever live server polls first
    once its lease has expired), the live server's job runs to its end, and its
    folder stays until then."""
    workdir, release = Path(section["remote_workdir"]), tmp_path / "release"
    live_home = configured_home(tmp_path / "c", section | {"orphan_timeout": LIVE_ORPHAN_TIMEOUT})
    with running_server(live_home) as live:
        live_dispatch = dispatch_waiting(live, tmp_path / "c-markers", release, 1)
        live_folders = owned(workdir, TASK_FOLDER_PREFIX)
        (live_lease,) = owned(workdir, LEASE_PREFIX)
        first_expiry = int(live_lease.read_text())

        killed = kill_while_two_jobs_run(
            configured_home(tmp_path / "a", section), workdir, cluster, tmp_path / "a-markers"
        )
        run_one_task(configured_home(tmp_path / "b", section))
        killed.wait_until_expired()
        assert_cancelled_and_removed(cluster, workdir, killed)

        assert owned(workdir, TASK_FOLDER_PREFIX) == live_folders
        assert list(jobs_in(cluster, live_folders).values()) == ["RUNNING"]
        assert int(live_lease.read_text()) > first_expiry  # renewed all along
        release.touch()
        finished = run_client(live, RESULT.format(dispatch_id=live_dispatch))
    assert finished.stdout.split()[-1:] == ["COMPLETED"], finished.stderr
    assert list(workdir.iterdir()) == []


def test_a_task_whose_folder_was_removed_fails_saying_why(covalent_server, section, tmp_path):
    """As when another server took this one for gone (it could not reach the login
    node for orphan_timeout): the task's folder is removed while its job runs."""
    workdir, markers, release = Path(section["remote_workdir"]), tmp_path / "m", tmp_path / "r"
    markers.mkdir()
    executor = SlurmTimingExecutor(**section)
    dispatch_id = ct.dispatch(waiting_workflow(executor, str(markers), str(release), 1))()
    wait_until(lambda: list(markers.iterdir()), limit=120)
    (folder,) = owned(workdir, TASK_FOLDER_PREFIX)
    shutil.rmtree(folder)
    release.touch()
    result = ct.get_result(dispatch_id, wait=True)
    error = error_of(result, "waits")
    assert "the folder of Slurm job " in error and str(folder) in error, error
    assert "orphan_timeout (15 s)" in error
    assert list(workdir.iterdir()) == []


def test_only_expired_leases_are_listed_and_a_lease_never_moves_back(tmp_path):
    """The shell lines of slurm_leases, run by this machine's shell: a lease of
    another server whose time has passed is listed, not one still valid, nor a
    lease being written, nor one that holds no time."""
    now = int(time.time())
    for owner, until in [("a" * 12, now - 5), ("b" * 12, now + 600), ("c" * 12, "x")]:
        (tmp_path / f"{LEASE_PREFIX}{owner}").write_text(f"{until}\n")
    (tmp_path / f"{LEASE_PREFIX}new-{'d' * 12}").write_text(f"{now - 5}\n")
    shell, folder = LocalShell(), shlex.quote(str(tmp_path))
    listed = asyncio.run(shell.run(expired_leases([str(tmp_path)])))
    lines = listed.stdout.decode().splitlines()
    gone = [expired_lease(line, [str(tmp_path)]) for line in lines]
    assert gone == [(str(tmp_path), "a" * 12), None]  # new-dddd… is no owner id
    lease = tmp_path / f"{LEASE_PREFIX}{OWNER}"
    asyncio.run(shell.run(renew_lease(folder, 600)))
    later = int(lease.read_text())
    assert now + 600 <= later <= int(time.time()) + 600
    asyncio.run(shell.run(renew_lease(folder, 10)))
    assert int(lease.read_text()) == later
