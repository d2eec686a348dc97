"""SlurmTimingExecutor against a real single-node Slurm (the kit's ``slurm_cluster``
fixture), whose jobs run a Python with Covalent but not this package, and a real
Covalent server: jobs submitted on this machine and over SSH, CPU time measured in
the job, output and exits, every way a job can end, a job Slurm has forgotten,
cancellation, and nothing left behind.

A job over its time limit takes Slurm a minute or more to end (limits are whole
minutes, checked every 30 s): it is dispatched by the second test and checked by the
last, while the others run (the first needs both of the node's CPUs)."""

import asyncio
import json
import tempfile
import time
from pathlib import Path

import covalent as ct
import pytest
import toml

from benchmarks.tasks import cpu_workflow
from covalent_plugin_testing.server import run_client, running_server
from covalent_plugin_testing.slurm_cluster import running_slurm_cluster
from tests.covalent_only_venv import OTHER_CLOUDPICKLE, other_cloudpickle
from tests.waiting import wait_for_pids, wait_until_gone
from tests.workflows import (
    add_multiply_workflow,
    assert_each_burn_recorded_its_cpu_time,
    assert_inside_the_config_folder,
    assert_misbehaviour_reported,
    covalent_folders_workflow,
    dispatch_and_wait,
    error_of,
    misbehaving_workflow,
    node_ids_by_name,
    records,
    sleeping_workflow,
)
from timing_executor.server_side.launchers import TaskExit
from timing_executor.server_side.shells import CommandResult, LocalShell
from timing_executor.server_side.slurm_jobs import JobEnd, SlurmJobs, why_job_failed
from timing_executor.server_side.slurm_leases import workdir_of
from timing_executor.server_side.ssh_connection import LoginFailed
from timing_executor.slurm_timing import SlurmTimingExecutor
from timing_executor.task_side.boot import LAUNCHER_BOOT, VERSIONS_SAID

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def workdir_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slurm-workdirs")


@pytest.fixture
def remote_workdir(workdir_root) -> Path:
    return Path(tempfile.mkdtemp(dir=workdir_root, prefix="work dir "))  # a space too


def options_for(cluster, python: str, remote_workdir: Path) -> dict:
    """What the executor needs to submit to ``cluster`` from this machine."""
    return {
        "python_path": python,
        "remote_workdir": str(remote_workdir),
        "slurm_conf": str(cluster.conf),
        "poll_freq": 0.5,
    }


@pytest.fixture
def options(slurm_cluster, covalent_only, remote_workdir) -> dict:
    return options_for(slurm_cluster, covalent_only, remote_workdir)


@pytest.fixture
def executor(options, tmp_path):
    return SlurmTimingExecutor(
        **options, timing_filepath=tmp_path / "records.jsonl", record_format="jsonl"
    )


def one_task(executor, task):
    """A workflow of one electron that runs ``task()`` with ``executor``."""
    electron = ct.electron(task, executor=executor)

    @ct.lattice
    def workflow():
        return electron()

    return workflow


@pytest.fixture(scope="module")
def out_of_time(slurm_cluster, covalent_only, workdir_root, tmp_path_factory):
    """A task whose job runs over its time limit (one minute), dispatched when the
    module starts: Slurm ends it 60 to 90 s later."""
    folder = tmp_path_factory.mktemp("out-of-time")
    executor = SlurmTimingExecutor(
        **options_for(slurm_cluster, covalent_only, folder),
        # 1 GB, not its CPU's share of the node's memory, which would keep the other
        # tests' jobs waiting while any other job holds some.
        options={"time": 1, "mem": "1G"},
        timing_filepath=folder / "records.jsonl",
        record_format="jsonl",
    )

    def sleeps_for_ever():
        import time

        print("started")
        time.sleep(600)

    return executor, ct.dispatch(one_task(executor, sleeps_for_ever))()


def test_cpu_time_is_measured_in_the_job(covalent_server, executor, tmp_path):
    """2 CPU-bound tasks that meet at a barrier, one job each on a 2-CPU node."""
    barrier = tempfile.mkdtemp(dir=tmp_path)
    result = dispatch_and_wait(cpu_workflow(executor, 2, 0.5, barrier, 60), 2)
    assert str(result.status) == "COMPLETED", result.error
    assert_each_burn_recorded_its_cpu_time(result, executor, 2)


def test_a_workflow_runs_as_jobs_and_is_recorded_here(
    covalent_server, executor, remote_workdir, out_of_time
):
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == 6
    runs = records(executor, result.dispatch_id)
    assert sorted(run["node_name"] for run in runs.values()) == ["add", "multiply"]
    for run in runs.values():
        assert (run["status"], run["state"], run["node"]) == (
            "COMPLETED",
            "COMPLETED",
            "localhost",
        )
        assert run["job_id"].isdigit()
    assert list(remote_workdir.iterdir()) == []


def test_the_servers_covalent_settings_stay_out_of_the_job(covalent_server, executor):
    """sbatch passes the submitter's environment on: the job unsets COVALENT_*, and
    its Covalent keeps its settings, and every folder it makes, in a folder inside
    the task's folder (so a job that is killed leaves none in the system's temporary
    folder or in the home folder), removed with it."""

    def covalent_settings():
        import os

        names = sorted(name for name in os.environ if name.startswith("COVALENT_"))
        return names, os.environ["COVALENT_CONFIG_DIR"]

    result = dispatch_and_wait(one_task(executor, covalent_settings))
    names, config_dir = result.result
    assert names == [
        "COVALENT_CONFIG_DIR",
        "COVALENT_DATABASE",
        "COVALENT_DISPATCH_CACHE_DIR",
        "COVALENT_EXECUTOR_DIR",
        "COVALENT_LOGDIR",
    ]
    assert Path(config_dir).parent.parent == Path(executor.remote_workdir)
    assert not Path(config_dir).exists()
    # Nothing of the job's Covalent in the home folder: all in the task's folder.
    folders = dispatch_and_wait(covalent_folders_workflow(executor)).result
    assert assert_inside_the_config_folder(folders).name == "covalent-config"


def test_option_values_reach_the_job_as_given(covalent_server, options):
    """Spaces, quotes, a backslash and ``#``, which a bare ``#SBATCH`` line splits or cuts
    (the remote_workdir has a space as well)."""
    name = 'count "primes" # it\'s a \\ test'
    executor = SlurmTimingExecutor(**options, options={"job-name": name, "comment": "a b"})

    def job_name():
        import os

        return os.environ["SLURM_JOB_NAME"]

    result = dispatch_and_wait(one_task(executor, job_name))
    assert result.result == name, result.error


def test_jobs_are_submitted_over_ssh_too(
    covalent_server, ssh_login, options, tmp_path, remote_workdir
):
    login = options | ssh_login
    executor = SlurmTimingExecutor(**login, timing_filepath=tmp_path / "r.jsonl")
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == 6
    assert len(Path(executor.timing_filepath).read_text().splitlines()) == 2
    assert list(remote_workdir.iterdir()) == []


def test_output_tracebacks_and_exits_reach_the_nodes_result(
    covalent_server, executor, remote_workdir
):
    result = dispatch_and_wait(misbehaving_workflow(executor))
    assert_misbehaviour_reported(result)
    exits_hard = error_of(result, "exits_hard")
    assert "; Slurm job " in exits_hard and " ended COMPLETED" in exits_hard
    assert list(remote_workdir.iterdir()) == []


def test_a_killed_launcher_is_not_taken_for_other_versions():
    """bash reports a killed pipeline with its command, the launcher's source, which
    holds the versions message's words (a CI run said "other versions" for this)."""
    killed = (
        "/var/spool/slurmd/job00020/slurm_script: line 9: 4242 Killed"
        f"    base64 -d <<'RUNNER' | python3 -c '{LAUNCHER_BOOT}' '{{}}'\n"
        "slurmstepd: error: Exceeded job memory limit\n"
    )
    why = why_job_failed("20", "FAILED", TaskExit(None), killed)
    assert why.startswith("OUT_OF_MEMORY: Slurm job 20 ran out of memory"), why
    said = f'{VERSIONS_SAID}{{"python": "3.9"}}\n'
    assert "other versions" in why_job_failed("20", "FAILED", TaskExit(None), said)


def test_a_job_over_its_memory_fails_the_node_naming_it(covalent_server, options):
    executor = SlurmTimingExecutor(**options, options={"mem": "50M"})

    def eats_memory():
        import time

        hoard = bytearray(400 * 2**20)
        time.sleep(10)
        return len(hoard)

    result = dispatch_and_wait(one_task(executor, eats_memory))
    assert str(result.status) == "FAILED"
    error = error_of(result, "eats_memory")
    assert "OUT_OF_MEMORY: Slurm job " in error and "ran out of memory" in error
    assert "memory limit" in error  # Slurm's own words


def test_a_job_cancelled_outside_covalent_fails_the_node_naming_it(
    covalent_server, slurm_cluster, executor, tmp_path
):
    markers = tmp_path / "markers"
    markers.mkdir()
    dispatch_id = ct.dispatch(sleeping_workflow(executor, str(markers), seconds=120))()
    tasks_started(slurm_cluster, markers, 1)
    (job_id,) = running_jobs(slurm_cluster)
    slurm_cluster.run("scancel", job_id, check=True)
    result = ct.get_result(dispatch_id, wait=True)
    error = error_of(result, "nap")
    assert f"CANCELLED: Slurm job {job_id} was cancelled outside Covalent" in error
    run = records(executor, dispatch_id)[node_ids_by_name(result)["nap"]]
    assert (run["status"], run["state"], run["job_id"]) == ("FAILED", "CANCELLED", job_id)


def tasks_started(cluster, markers: Path, count: int) -> list[int]:
    """``wait_for_pids``, showing the queue if the tasks never started."""
    try:
        return wait_for_pids(markers, count)
    except AssertionError as error:
        queue = cluster.run("squeue", "--noheader", "--states=all", "--format=%i %T %r %m")
        raise AssertionError(f"{error}; Slurm's queue:\n{queue.stdout}") from None


def running_jobs(cluster) -> list[str]:
    """The jobs whose task runs, not the one sleeping over its time limit's."""
    done = cluster.run("squeue", "--noheader", "--format=%i %j %l", check=True)
    return [line.split()[0] for line in done.stdout.splitlines() if "1:00" not in line]


def test_sbatch_refusing_the_job_fails_the_node_at_once_with_its_words(covalent_server, options):
    executor = SlurmTimingExecutor(**options, options={"partition": "nowhere"})
    started = time.monotonic()
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert time.monotonic() - started < 30
    error = error_of(result, "add")
    assert "sbatch on this machine refused the job" in error
    assert "invalid partition specified: nowhere" in error


def test_a_compute_node_python_with_other_versions_fails_naming_them(
    covalent_server, options, tmp_path
):
    other = other_cloudpickle(tmp_path / "other-cloudpickle")
    executor = SlurmTimingExecutor(**options, env={"PYTHONPATH": str(other)})
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    error = error_of(result, "add")
    assert "the compute node's Python runs other versions than this server" in error
    assert f'"cloudpickle": "{OTHER_CLOUDPICKLE}"' in error


def test_cancel_scancels_the_job_and_its_processes_stop(
    covalent_server, slurm_cluster, executor, tmp_path, remote_workdir
):
    """The task's processes end within seconds of ct.cancel (its HTTP request to the
    server, then scancel); 15 s allows for a loaded 2-core machine. The job would
    sleep 120 s."""
    markers = tmp_path / "markers"
    markers.mkdir()
    dispatch_id = ct.dispatch(sleeping_workflow(executor, str(markers), seconds=120))()
    pids = tasks_started(slurm_cluster, markers, 1)
    (job_id,) = running_jobs(slurm_cluster)
    ct.cancel(dispatch_id)
    wait_until_gone(pids, limit=15)
    result = ct.get_result(dispatch_id, wait=True)
    assert str(result.status) == "CANCELLED"
    nap = node_ids_by_name(result)["nap"]
    assert str(result.get_node_result(nap)["status"]) == "CANCELLED"
    run = records(executor, dispatch_id)[nap]
    assert (run["status"], run["job_id"]) == ("CANCELLED", job_id)
    assert job_id not in running_jobs(slurm_cluster)
    assert list(remote_workdir.iterdir()) == []


def test_cancel_also_takes_jobs_still_waiting_out_of_the_queue(
    covalent_server, slurm_cluster, options, tmp_path, remote_workdir
):
    """Jobs that may not start for ten minutes (sbatch's ``begin``) are PENDING when
    the dispatch is cancelled: they leave the queue, and their nodes say CANCELLED."""
    executor = SlurmTimingExecutor(
        **options,
        options={"begin": "now+600"},
        timing_filepath=tmp_path / "records.jsonl",
        record_format="jsonl",
    )
    dispatch_id = ct.dispatch(sleeping_workflow(executor, str(tmp_path), tasks=2))()
    deadline = time.monotonic() + 60
    while len(waiting := pending_jobs(slurm_cluster)) < 2:
        assert time.monotonic() < deadline, "the jobs never reached the queue"
        time.sleep(0.2)
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    assert str(result.status) == "CANCELLED"
    runs = records(executor, dispatch_id)
    assert sorted(run["job_id"] for run in runs.values()) == sorted(waiting)
    assert {(run["status"], run["state"]) for run in runs.values()} == {("CANCELLED", "CANCELLED")}
    for node_id in runs:
        assert str(result.get_node_result(node_id)["status"]) == "CANCELLED"
    assert not set(waiting) & set(running_jobs(slurm_cluster))
    assert list(remote_workdir.iterdir()) == []


def pending_jobs(cluster) -> list[str]:
    done = cluster.run("squeue", "--noheader", "--states=PENDING", "--format=%i", check=True)
    return done.stdout.split()


class LoginNodeDownOnce(LocalShell):
    """This machine's shell, whose first ``squeue`` fails as an unreachable login
    node's would."""

    failed = False

    async def run(self, command: str, input: bytes | None = None) -> CommandResult:
        if "squeue" in command and not self.failed:
            self.failed = True
            raise LoginFailed("login.example.org:22 refused the connection")
        return await super().run(command, input)


def test_a_poll_that_fails_does_not_stop_the_polling(slurm_cluster, tmp_path):
    """Slurm remembers an ended job for 300 s (MinJobAge): the poller that asked
    again sees it COMPLETED; "" would mean it never saw the job."""
    job_id = slurm_cluster.submit("#!/bin/sh\ntrue\n")
    shell = LoginNodeDownOnce()
    slurm = f"SLURM_CONF={slurm_cluster.conf} "
    jobs = SlurmJobs(shell, slurm + "squeue", slurm + "scancel", poll_freq=0.2)

    async def end_of_job() -> JobEnd:
        workdir = workdir_of(shell, str(tmp_path))
        await workdir.enter(shell, orphan_timeout=60)
        try:
            return await asyncio.wait_for(jobs.end_of(job_id, workdir), timeout=60)
        finally:
            await workdir.leave(shell, orphan_timeout=60)

    ended = asyncio.run(end_of_job())
    assert shell.failed
    assert ended.state == "COMPLETED"
    assert list(tmp_path.iterdir()) == []  # the lease too is gone


class SubmitsDuringTheFirstSqueue(LocalShell):
    """This machine's shell: while its first ``squeue`` runs, another task's job is
    submitted and waited for, as when many tasks start at once."""

    def __init__(self, submit) -> None:
        self.submit, self.late = submit, []

    async def run(self, command: str, input: bytes | None = None) -> CommandResult:
        listed = await super().run(command, input)
        if "squeue" in command and not self.late:
            self.late.append(self.submit())
            await asyncio.sleep(0)
        return listed


def test_a_job_submitted_while_squeue_runs_is_not_taken_for_gone(slurm_cluster, tmp_path):
    """The first ``squeue`` answer lacks the job submitted while it ran: that job
    has not ended for that, and its wait goes on until Slurm says COMPLETED."""
    slurm = f"SLURM_CONF={slurm_cluster.conf} "

    def submit_and_wait() -> asyncio.Task:
        job_id = slurm_cluster.submit("#!/bin/sh\nsleep 1\n")
        return asyncio.create_task(jobs.end_of(job_id, workdir_of(shell, str(tmp_path))))

    shell = SubmitsDuringTheFirstSqueue(submit_and_wait)
    jobs = SlurmJobs(shell, slurm + "squeue", slurm + "scancel", poll_freq=0.2)

    async def both_ends() -> tuple[JobEnd, JobEnd]:
        workdir = workdir_of(shell, str(tmp_path))
        await workdir.enter(shell, orphan_timeout=60)
        try:
            first = slurm_cluster.submit("#!/bin/sh\nsleep 3\n")
            first_end = await asyncio.wait_for(jobs.end_of(first, workdir), timeout=60)
            return first_end, await asyncio.wait_for(shell.late[0], timeout=60)
        finally:
            await workdir.leave(shell, orphan_timeout=60)

    first, late = asyncio.run(both_ends())
    assert (first.state, late.state) == ("COMPLETED", "COMPLETED")


def test_a_job_slurm_has_forgotten_is_not_lost(covalent_server, covalent_only, tmp_path):
    """Slurm forgets a job MinJobAge after its end (here 2 s, purged within 10 s);
    polling every 15 s, the executor finds the task's end in its folder."""
    with running_slurm_cluster(tmp_path / "forgetful", min_job_age=2) as cluster:
        executor = SlurmTimingExecutor(
            **options_for(cluster, covalent_only, tmp_path / "workdir"),
            timing_filepath=tmp_path / "records.jsonl",
            record_format="jsonl",
        )
        executor.poll_freq = 15
        result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == 6
    states = {run["state"] for run in records(executor, result.dispatch_id).values()}
    assert states == {"COMPLETED"}


SUBMITTER_VARIABLES = """
import json
import covalent as ct
from covalent.executor import SlurmTimingExecutor

settings = ct.get_config("executors.slurm_timing")
bare = SlurmTimingExecutor(**settings | {"options": {"export": "NONE"}})
small = SlurmTimingExecutor(**settings | {"options": {"mem": "50M"}, "use_srun": False})


def greeting():
    import os

    return os.environ.get("GREETING"), os.environ.get("SLURM_STEP_ID")


def hoard():
    import time

    data = bytearray(400 * 2**20)
    time.sleep(10)
    return len(data)


@ct.lattice
def workflow():
    step = ct.electron(greeting, executor="slurm_timing")()
    bare_step = ct.electron(greeting, executor=bare)()
    return step, bare_step, ct.electron(hoard, executor=small)()


result = ct.get_result(ct.dispatch(workflow)(), wait=True)
nodes = [result.get_node_result(node_id) for node_id in range(3)]
print(json.dumps([[node["output"].get_deserialized() if node["output"] else None,
                   node["stderr"]] for node in nodes]))
"""


def test_the_submitters_sbatch_variables_leave_env_and_the_jobs_output_in_place(options, tmp_path):
    """A submitter (server) whose environment says SBATCH_EXPORT=NONE, or options
    that say export NONE: a job step (use_srun) still gets env, which it would not by
    Slurm's default. SBATCH_OUTPUT and SBATCH_ERROR, which sbatch reads over the
    script's lines, would move the job's output out of its folder, and with it
    Slurm's words: the executor unsets them for sbatch."""
    elsewhere = tmp_path / "elsewhere.out"
    home = tmp_path / "home"
    config_file = home / ".config" / "covalent" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    section = options | {"use_srun": True, "env": {"GREETING": "hello"}}
    config_file.write_text(toml.dumps({"executors": {"slurm_timing": section}}))
    submitter = {name: str(elsewhere) for name in ("SBATCH_OUTPUT", "SBATCH_ERROR")}
    with running_server(home, extra_env=submitter | {"SBATCH_EXPORT": "NONE"}) as server:
        done = run_client(server, SUBMITTER_VARIABLES)
    assert done.returncode == 0, done.stderr
    nodes = json.loads(done.stdout.splitlines()[-1])
    (step, _), (bare_step, _), (_, hoard_error) = nodes
    assert [step, bare_step] == [["hello", "0"]] * 2, nodes  # job steps, with env
    assert hoard_error.startswith("OUT_OF_MEMORY: Slurm job "), hoard_error
    assert "memory limit" in hoard_error  # Slurm's words, from the job's folder
    assert not elsewhere.exists()


BY_SHORT_NAME = """
import json
import covalent as ct
from tests.workflows import add_multiply_workflow, dispatch_and_wait


@ct.electron(executor="slurm_timing")
def environment():
    import os

    return os.environ["GREETING"], os.environ["MOOD"], "SLURM_STEP_ID" in os.environ


@ct.lattice
def workflow():
    return environment()


result = dispatch_and_wait(add_multiply_workflow("slurm_timing"), 1, 2)
env = ct.get_result(ct.dispatch(workflow)(), wait=True)
print(json.dumps([str(result.status), result.result, result.dispatch_id, env.result]))
"""


def test_every_argument_works_from_the_executor_section_of_covalent_conf(options, tmp_path):
    home, records_file = tmp_path / "home", tmp_path / "records.jsonl"
    config_file = home / ".config" / "covalent" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    section = options | {"timing_filepath": str(records_file), "record_format": "jsonl"}
    section |= {
        "options": {"job-name": "from-covalent-conf", "cpus-per-task": 1},
        "env": {"GREETING": "hello"},
        "prerun_commands": ["export MOOD=fine"],
        "postrun_commands": ["echo after"],
        "use_srun": True,
        "slurm_path": "/usr/bin",
    }
    config_file.write_text(toml.dumps({"executors": {"slurm_timing": section}}))
    with running_server(home) as server:
        done = run_client(server, BY_SHORT_NAME)
    assert done.returncode == 0, done.stderr
    status, result, dispatch_id, env = json.loads(done.stdout.splitlines()[-1])
    assert (status, result) == ("COMPLETED", 6), done.stdout
    assert env == ["hello", "fine", True]  # the task ran as a job step (srun)
    lines = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert [line["dispatch_id"] for line in lines][:2] == [dispatch_id] * 2


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ({"options": {"output": "x.out"}}, "options may not set 'output'"),
        ({"options": {"comment": "a\nb"}}, "cannot hold a line break"),
        ({"env": {"A-B": "1"}}, "'A-B' is not"),
        ({"poll_freq": 0}, "poll_freq 0 is not"),
    ],
)
def test_values_that_cannot_work_are_refused_at_once(argument, message):
    with pytest.raises(ValueError, match=message):
        SlurmTimingExecutor(timing_filepath="/dev/null", **argument)


def test_a_job_over_its_time_limit_fails_the_node_naming_it(out_of_time, slurm_cluster):
    executor, dispatch_id = out_of_time
    result = ct.get_result(dispatch_id, wait=True)
    assert str(result.status) == "FAILED"
    error = error_of(result, "sleeps_for_ever")
    assert "TIMEOUT: Slurm job " in error and "ran out of time (its --time limit)" in error
    assert "DUE TO TIME LIMIT" in error  # Slurm's own words
    node = result.get_node_result(node_ids_by_name(result)["sleeps_for_ever"])
    assert node["stdout"] == "started\n"
    (run,) = records(executor, dispatch_id).values()
    assert (run["status"], run["state"]) == ("FAILED", "TIMEOUT")
    slurm_cluster.wait_until_idle(timeout=30)
