"""Time tasks in a Slurm queue: ``SlurmTimingExecutor``.

Each task is one batch job. The executor writes the task to a folder of its own in
``remote_workdir`` (a folder the login node and the compute nodes share) and
submits a job script with ``sbatch``, on the server's own machine or on a login
node over SSH. The job runs the task under the same supervisor as every executor
of this package (:mod:`~timing_executor.task_side.supervisor`), sent in the script
by value, so the compute node needs Python and Covalent but not this package; the
supervisor measures the task's CPU time there and ends every process it left. The
executor asks Slurm for the state of all its jobs at once, reads what a finished
job left in its folder, appends the record here, and removes the folder. Each job
bears its server's mark, and the server keeps a lease in ``remote_workdir`` while
it has jobs there: the next server cancels the jobs of a server that died
(:mod:`~timing_executor.server_side.slurm_leases`).
"""

# --8<-- [start:imports]
import io
import json
import os
import shlex
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import cloudpickle
from covalent.executor.base import AsyncBaseExecutor
from covalent.executor.schemas import TaskUpdate

from timing_executor.server_side.defaults import empty_means_default
from timing_executor.server_side.launchers import TaskExit
from timing_executor.server_side.records import (
    DEFAULT_TIMING_FILEPATH,
    TaskRecord,
    check_record_format,
    resolve_timing_filepath,
    task_ids,
    task_name,
)
from timing_executor.server_side.reporting import refused_tasks, report_end
from timing_executor.server_side.shells import LocalShell, Shell, SSHShell
from timing_executor.server_side.slurm_job_scripts import (
    UNSET_FOR_SBATCH,
    JobScript,
    sbatch_lines,
)
from timing_executor.server_side.slurm_jobs import (
    cancel_and_wait,
    final_state,
    slurm_jobs,
    why_job_failed,
)
from timing_executor.server_side.slurm_leases import task_folder, workdir_of
from timing_executor.server_side.ssh_connection import (
    check_port,
    environment,
    remote_quote,
    target_of,
)
from timing_executor.server_side.task_runs import TaskEnd, task_end

# --8<-- [end:imports]


# --8<-- [start:plugin-attributes]
executor_plugin_name = "SlurmTimingExecutor"

_EXECUTOR_PLUGIN_DEFAULTS = {
    "hostname": "",
    "port": 22,
    "username": "",
    "ssh_key_file": "",
    "known_hosts": "~/.ssh/known_hosts",
    "connect_timeout": 10.0,
    "options": {},
    "python_path": "python3",
    "remote_workdir": "covalent-workdir",
    "env": {},
    "prerun_commands": [],
    "postrun_commands": [],
    "use_srun": False,
    "slurm_path": "",
    "slurm_conf": "",
    "poll_freq": 2.0,
    "orphan_timeout": 600.0,
    "timing_filepath": DEFAULT_TIMING_FILEPATH,
    "record_format": "text",
}


@dataclass(frozen=True)
class SlurmTaskRecord(TaskRecord):
    """A task's record, with its job."""

    job_id: str | None = None  #: Slurm's id of the task's job.
    node: str | None = None  #: The compute node that ran it.
    state: str | None = None  #: Slurm's last state of the job, such as COMPLETED.


# --8<-- [end:plugin-attributes]


# --8<-- [start:executor]
@empty_means_default(_EXECUTOR_PLUGIN_DEFAULTS)
class SlurmTimingExecutor(AsyncBaseExecutor):
    """Run each task as a Slurm batch job and record its CPU time.

    Args:
        hostname: The login node to submit from over SSH; empty: submit on the
            server's own machine (the server runs on a login node).
        port, username, ssh_key_file, known_hosts, connect_timeout: How to log in
            to ``hostname``, as for ``SSHTimingExecutor``.
        options: ``sbatch`` options, such as ``{"partition": "debug",
            "time": "00:10:00", "cpus-per-task": 2, "mem": "4G"}``.
        python_path: The Python that runs the task on the compute node, with the
            server's Covalent, cloudpickle and Python minor version.
        remote_workdir: A folder the login and compute nodes share; each task gets
            a folder in it, removed when the task has ended. Relative paths start
            at the user's home.
        env: Environment variables for the job.
        prerun_commands: Shell lines the job runs before the task, such as
            ``module load python/3.11`` or ``source ~/venv/bin/activate``.
        postrun_commands: Shell lines the job runs after the task.
        use_srun: Run the task as a job step (``srun``) rather than in the batch
            script itself.
        slurm_path: The folder of ``sbatch``, ``squeue`` and ``scancel``, if they
            are not on the ``PATH``.
        slurm_conf: The cluster's ``slurm.conf``, if it is not Slurm's default
            (``SLURM_CONF`` for the Slurm commands).
        poll_freq: Seconds between two questions to Slurm about the jobs.
        orphan_timeout: Seconds after this server's last sign of life (at every
            poll it renews a lease in ``remote_workdir`` while it has jobs there)
            from which another server polling jobs there takes it for gone,
            cancels its jobs and removes their folders. At least 10 polls.
        timing_filepath: File the records are appended to, on the server.
        record_format: ``"text"`` or ``"jsonl"`` (which adds the job's id, node and
            final state).
        **kwargs: Options every Covalent executor takes, such as ``log_stdout``.
    """

    def __init__(
        self,
        hostname: str = "",
        port: int = 22,
        username: str = "",
        ssh_key_file: str = "",
        known_hosts: str = "~/.ssh/known_hosts",
        connect_timeout: float = 10.0,
        options: dict[str, Any] | None = None,
        python_path: str = "python3",
        remote_workdir: str = "covalent-workdir",
        env: dict[str, str] | None = None,
        prerun_commands: list[str] | None = None,
        postrun_commands: list[str] | None = None,
        use_srun: bool = False,
        slurm_path: str = "",
        slurm_conf: str = "",
        poll_freq: float = 2.0,
        orphan_timeout: float = 600.0,
        timing_filepath: str | os.PathLike = DEFAULT_TIMING_FILEPATH,
        record_format: str = "text",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hostname, self.port, self.username = hostname, port, username
        self.ssh_key_file, self.known_hosts = ssh_key_file, known_hosts
        self.connect_timeout = connect_timeout
        self.options, self.python_path = dict(options or {}), python_path
        self.remote_workdir, self.env = remote_workdir, dict(env or {})
        self.prerun_commands = list(prerun_commands or [])
        self.postrun_commands = list(postrun_commands or [])
        self.use_srun, self.slurm_path, self.slurm_conf = (
            use_srun,
            slurm_path,
            slurm_conf,
        )
        self.poll_freq, self.orphan_timeout = poll_freq, orphan_timeout
        self.timing_filepath = resolve_timing_filepath(timing_filepath)
        self.record_format = check_record_format(record_format)
        check_port(port)  # values that cannot work fail here, on the client
        self.job_script()
        if not isinstance(poll_freq, int | float) or poll_freq <= 0:
            raise ValueError(
                f"poll_freq {poll_freq!r} is not a number of seconds > 0."
            )
        if not isinstance(orphan_timeout, int | float) or not (
            orphan_timeout >= 10 * poll_freq
        ):
            raise ValueError(
                f"orphan_timeout {orphan_timeout!r} is not a number of seconds of "
                f"at least 10 polls (10 x poll_freq = {10 * poll_freq} s): another "
                "server could take this one for gone while it waits for its jobs."
            )

    def shell(self) -> Shell:
        """Where the Slurm commands run: here, or on ``hostname`` over SSH."""
        if not self.hostname:
            return LocalShell()
        return SSHShell(target_of(self).check())

    def job_script(self) -> JobScript:
        sbatch_lines(self.options)
        return JobScript(
            self.python_path,
            tuple(self.options.items()),
            environment(self.env),
            tuple(self.prerun_commands),
            tuple(self.postrun_commands),
            self.use_srun,
        )

    def slurm(self, command: str) -> str:
        """The shell words that run a Slurm command, with ``slurm_path`` and
        ``slurm_conf``."""
        conf = (
            f"SLURM_CONF={remote_quote(self.slurm_conf)} "
            if self.slurm_conf
            else ""
        )
        folder = self.slurm_path.rstrip("/")
        return conf + (remote_quote(f"{folder}/{command}") if folder else command)

    async def run(
        self, function: Callable, args: list, kwargs: dict, task_metadata: dict
    ) -> Any:
        """Run the task as a batch job; record it; return its result."""
        task_ids(task_metadata)  # bad metadata fails before anything starts
        started_at, wall_start = time.time(), time.perf_counter()
        details: dict[str, Any] = {"job_id": None, "node": None, "state": None}
        report = partial(report_end, record_type=SlurmTaskRecord)
        name = task_name(function)

        def failed(error: Exception, wall_seconds: float) -> Any:
            end = TaskEnd("FAILED", started_at, 0.0, wall_seconds)
            end.error = f"{type(error).__name__}: {error}"
            end.report = end.error + "\n"
            return report(end, task_metadata, name, self, **details)

        try:
            shell = self.shell()
            workdir = workdir_of(shell, self.remote_workdir)
            await workdir.enter(shell, self.orphan_timeout)
        except (ConnectionError, ValueError, RuntimeError) as error:
            return failed(error, 0.0)
        folder = task_folder(workdir.path)
        job_id = job = None
        try:
            await self._stage(shell, folder, function, args, kwargs)
            job_id = await self._submit(shell, folder)
            details["job_id"] = job_id
            if hasattr(self, "_send_queue"):  # run by Covalent, not called by hand
                await self.set_job_handle(job_id)  # what cancel() gets back
                if await self.get_cancel_requested():  # asked before it was saved
                    await self.cancel(task_metadata, job_id)
            jobs = slurm_jobs(
                shell, self.slurm("squeue"), self.slurm("scancel"), self.poll_freq
            )
            job = await jobs.end_of(job_id, workdir)
            details["node"] = job.node or None
            exit, output = await self._collect(shell, folder, job_id)
        except (ConnectionError, RuntimeError) as error:
            return failed(error, time.perf_counter() - wall_start)
        finally:
            ending = ""
            if job_id is not None and job is None:  # the server stops, say
                # The job still writes into its folder while it ends.
                squeue, scancel = self.slurm("squeue"), self.slurm("scancel")
                ending = cancel_and_wait([job_id], squeue, scancel)
            try:
                await shell.run(f"{ending}\nrm -rf {shlex.quote(folder)}")
            finally:
                await workdir.leave(shell, self.orphan_timeout)
        cancelled = (
            hasattr(self, "_send_queue") and await self.get_cancel_requested()
        )
        details["state"] = final_state(job, exit, output)
        why = why_job_failed(job_id, details["state"], exit, output)
        wall_seconds = time.perf_counter() - wall_start
        end = task_end(exit, started_at, wall_seconds, cancelled, why)
        return report(end, task_metadata, name, self, **details)

    async def _stage(
        self, shell: Shell, folder: str, function: Callable, args, kwargs
    ) -> None:
        """Write the task to ``folder``, a new folder in ``remote_workdir``."""
        workdir = os.path.dirname(folder)
        task = cloudpickle.dumps(
            (workdir, function, args, kwargs)
        )  # runs in workdir
        quoted = shlex.quote(folder)
        written = await shell.run(
            f"mkdir {quoted} && cat > {quoted}/task.pkl", task
        )
        if written.status != 0:
            raise RuntimeError(
                f"{shell.where}: cannot write the task into {workdir}: "
                f"{written.error()}"
            )

    async def _submit(self, shell: Shell, folder: str) -> str:
        """Submit the job of the task in ``folder``; return its id, or raise with
        Slurm's own words."""
        script = self.job_script().text(folder).encode()
        submitted = await shell.run(
            f"unset {' '.join(UNSET_FOR_SBATCH)}; "
            f"{self.slurm('sbatch')} --parsable",
            input=script,
        )
        if submitted.status != 0:
            raise RuntimeError(
                f"sbatch on {shell.where} refused the job: {submitted.error()}"
            )
        return submitted.stdout.decode().strip().split(";")[0]

    async def _collect(
        self, shell: Shell, folder: str, job_id: str
    ) -> tuple[TaskExit, str]:
        """What the job left in ``folder``: how the task ended, and the job's own
        output (Slurm's messages)."""
        leave_out = "--exclude=./task.pkl --exclude=./covalent-config"
        packed = await shell.run(
            f"tar -C {shlex.quote(folder)} {leave_out} -cf - ."
        )
        if packed.status not in (0, 1):  # 1: a file changed while it was read
            raise RuntimeError(
                f"{shell.where}: the folder of Slurm job {job_id} is gone "
                f"({folder}: {packed.error()}). Another server polling jobs in "
                "remote_workdir takes a server for gone, cancels its jobs and "
                "removes their folders, when it has had no sign of life from it "
                f"for orphan_timeout ({self.orphan_timeout} s): as when this "
                "server could not reach the login node for that long."
            )
        files = {}
        with tarfile.open(fileobj=io.BytesIO(packed.stdout)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    files[os.path.basename(member.name)] = archive.extractfile(
                        member
                    ).read()
        ended = json.loads(files.get("ended.json", b"{}") or b"{}")
        exit = TaskExit(
            exit_code=ended.get("exit_code"),
            cpu_seconds=ended.get("cpu_seconds", 0.0),
            others_cpu_seconds=ended.get("others_cpu_seconds", 0.0),
            files=files,
        )
        return exit, files.get("slurm.out", b"").decode(errors="replace")

    async def cancel(self, task_metadata: dict, job_handle: Any) -> bool:
        """``scancel`` the task's job: Slurm stops all of its processes.

        Covalent calls this on a new executor, for every node of the dispatch; the
        job handle is the job's id, or None for a node that never had a job.
        """
        if not isinstance(job_handle, str):
            return False
        done = await self.shell().run(
            f"{self.slurm('scancel')} {shlex.quote(job_handle)}"
        )
        return done.status == 0

    async def receive(
        self, task_group_metadata: dict, data: Any
    ) -> list[TaskUpdate]:
        """Report CANCELLED the tasks Covalent refused to start."""
        return refused_tasks(task_group_metadata, data)


# --8<-- [end:executor]
