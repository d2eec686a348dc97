"""covalent_plugin_testing.slurm_cluster against a real Slurm (Debian's slurm-wlm and
munge): jobs complete, fail, are cancelled or run out of memory, and a cluster leaves
no process behind. (A job that runs out of time takes Slurm a minute or more to end:
tests/test_slurm_timing.py shows it once, through the executor.)"""

import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from covalent_plugin_testing import slurm_cluster
from covalent_plugin_testing.slurm_cluster import (
    SlurmCluster,
    SlurmNotFoundError,
    running_slurm_cluster,
)


def wait_until_gone(cluster: SlurmCluster, job_id: str, timeout: float = 30) -> float:
    """Wait until squeue no longer lists the job; return how long that took."""
    start = time.monotonic()
    while job_id in cluster.job_ids():
        assert time.monotonic() - start < timeout, cluster.job_info(job_id)
        time.sleep(0.1)
    return time.monotonic() - start


def wait_until_running(cluster: SlurmCluster, job_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while cluster.job_info(job_id).get("JobState") != "RUNNING":
        assert time.monotonic() < deadline, cluster.job_info(job_id)
        time.sleep(0.1)


def processes_of(folder: Path) -> list[psutil.Process]:
    """The running processes of the cluster in ``folder``: its daemons (the folder in
    their command line), its slurmstepd processes (working in ``folder/slurmd``) and
    its jobs' processes (``SLURM_CONF`` in ``folder``)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue  # ended, waiting for its parent to reap it
            if (
                any(str(folder) in word for word in process.cmdline())
                or Path(process.cwd()) == folder / "slurmd"
                or process.environ().get("SLURM_CONF", "").startswith(str(folder))
            ):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    with running_slurm_cluster(tmp_path_factory.mktemp("slurm"), memory_limits=True) as cluster:
        yield cluster


def test_a_job_runs_in_the_submitting_environment_and_completes(cluster, tmp_path):
    script = f'#!/bin/sh\necho "$GREETING from $SLURM_JOB_ID" > {tmp_path / "done"}\n'
    env = dict(cluster.env, GREETING="hello")
    submitted = cluster.run(
        "sbatch", "--parsable", input=script, stdin=None, env=env, cwd=cluster.folder
    )
    job_id = submitted.stdout.strip()
    assert submitted.returncode == 0, submitted.stderr
    assert wait_until_gone(cluster, job_id) < 10
    assert (tmp_path / "done").read_text() == f"hello from {job_id}\n"
    info = cluster.job_info(job_id)
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0")


def test_a_failing_job_ends_failed_with_its_exit_code(cluster):
    job_id = cluster.submit("#!/bin/sh\nexit 3\n")
    wait_until_gone(cluster, job_id)
    info = cluster.job_info(job_id)
    assert (info["JobState"], info["Reason"], info["ExitCode"]) == (
        "FAILED",
        "NonZeroExitCode",
        "3:0",
    )


def test_scancel_stops_a_running_job_quickly(cluster):
    job_id = cluster.submit("#!/bin/sh\nsleep 300\n", "--output=cancelled.out")
    wait_until_running(cluster, job_id)
    assert cluster.run("scancel", job_id).returncode == 0
    assert wait_until_gone(cluster, job_id) < 5
    assert cluster.job_info(job_id)["JobState"] == "CANCELLED"
    assert "CANCELLED AT" in (cluster.folder / "cancelled.out").read_text()


def test_a_job_over_its_memory_is_killed(cluster):
    code = "import time; b = b'x' * 300_000_000; time.sleep(60)"
    script = f'#!/bin/sh\n{sys.executable} -c "{code}"\n'
    job_id = cluster.submit(script, "--mem=50M", "--output=memory.out")
    assert wait_until_gone(cluster, job_id) < 15
    assert cluster.job_info(job_id)["JobState"] == "FAILED"
    assert "Exceeded job memory limit" in (cluster.folder / "memory.out").read_text()


def test_sbatch_names_an_unknown_partition(cluster):
    with pytest.raises(RuntimeError, match="Invalid partition name"):
        cluster.submit("#!/bin/sh\ntrue\n", "--partition=nope")


def test_a_cluster_takes_settings_and_leaves_no_process(tmp_path):
    folder = tmp_path / "second"
    short = "PartitionName=short Nodes=localhost MaxTime=1 State=UP"
    with running_slurm_cluster(folder, min_job_age=2, extra_config=[short]) as cluster:
        config = cluster.run("scontrol", "show", "config").stdout
        assert "MinJobAge               = 2 sec" in config
        # A job whose shell leaves processes in its session and in a new one, then one
        # that still runs: the cluster stops them all.
        leaving = "#!/bin/sh\nsleep 300 &\nsetsid sleep 300 < /dev/null > /dev/null 2>&1 &\n"
        job_id = cluster.submit(leaving, "--partition=short")
        wait_until_gone(cluster, job_id)
        assert cluster.job_info(job_id)["Partition"] == "short"
        cluster.submit("#!/bin/sh\nsleep 300\n", "--partition=short")
        deadline = time.monotonic() + 20  # MinJobAge, checked every 10 seconds
        while cluster.job_info(job_id):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert len(processes_of(folder)) >= 5  # munged, slurmctld, slurmd, the sleeps
    assert processes_of(folder) == []


def test_a_daemon_that_stops_while_starting_is_shown_with_its_log(tmp_path):
    with (
        pytest.raises(RuntimeError, match="NoSuchSetting"),
        running_slurm_cluster(tmp_path, extra_config=["NoSuchSetting=1"]),
    ):
        pass
    assert processes_of(tmp_path) == []


def test_a_port_taken_meanwhile_means_another_try(tmp_path, monkeypatch):
    choose = slurm_cluster.free_ports
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        tries = iter([[taken.getsockname()[1], *choose(1)]])
        monkeypatch.setattr(
            slurm_cluster, "free_ports", lambda count: next(tries, None) or choose(count)
        )
        with running_slurm_cluster(tmp_path) as cluster:
            assert cluster.slurmctld_port != taken.getsockname()[1]
            assert cluster.node_state() == "idle"
    assert processes_of(tmp_path) == []


def test_without_slurm_the_error_names_the_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(slurm_cluster, "_SBIN_FOLDERS", ())
    with (
        pytest.raises(SlurmNotFoundError, match="sudo apt install slurm-wlm munge") as raised,
        running_slurm_cluster(tmp_path / "cluster"),
    ):
        pass
    assert "slurmctld" in str(raised.value)
    assert not (tmp_path / "cluster").exists()


def test_the_node_is_idle_after_the_jobs(cluster):
    cluster.wait_until_idle(timeout=30)
    assert cluster.node_state() == "idle"
