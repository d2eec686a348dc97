"""Slurm's jobs as the executor sees them: the state of all its jobs at once, and
how a job ended, in words."""

import asyncio
import json
import shlex
from contextlib import suppress
from dataclasses import dataclass

from timing_executor.server_side.launchers import TaskExit
from timing_executor.server_side.shells import Shell
from timing_executor.server_side.slurm_leases import (
    EXPIRED,
    TASK_FOLDER_PREFIX,
    Workdir,
    expired_lease,
    expired_leases,
    reap,
)
from timing_executor.server_side.task_runs import describe_exit
from timing_executor.task_side.boot import VERSIONS_SAID, runtime_versions

# --8<-- [start:jobs]
#: Job states after which a job does no more.
ENDED_STATES = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT",
}  # fmt: skip


@dataclass(frozen=True)
class JobEnd:
    """What Slurm last said of a job: its state and the node that ran it."""

    state: str  #: Such as ``COMPLETED`` or ``TIMEOUT``; ``""`` if never seen ended.
    node: str = ""


class SlurmJobs:
    """The jobs this server waits for on one cluster, all polled with one
    ``squeue`` every ``poll_freq`` seconds. ``squeue --states=all`` also lists
    jobs that ended less than ``MinJobAge`` ago; a job Slurm has forgotten has
    ended too, and what it left in its folder says how. The same command keeps
    this server's lease in each ``remote_workdir`` of its jobs and lists the
    leases there that have expired: the jobs of those servers are cancelled, and
    their folders removed (:mod:`~timing_executor.server_side.slurm_leases`)."""

    def __init__(
        self, shell: Shell, squeue: str, scancel: str, poll_freq: float
    ) -> None:
        self.shell, self.poll_freq = shell, poll_freq
        self.squeue, self.scancel = squeue, scancel
        self.waiting: dict[str, tuple[asyncio.Future, Workdir]] = {}
        self.seen: dict[str, JobEnd] = {}
        self.polling: asyncio.Task | None = None

    async def end_of(self, job_id: str, workdir: Workdir) -> JobEnd:
        """Wait until job ``job_id`` (its folder in ``workdir``) has ended; say
        how, as far as Slurm knows."""
        ended = asyncio.get_running_loop().create_future()
        self.waiting[job_id] = ended, workdir
        if self.polling is None or self.polling.done():
            self.polling = asyncio.create_task(self._poll())
        try:
            return await ended
        finally:
            self.waiting.pop(job_id, None)

    async def _poll(self) -> None:
        while self.waiting:
            await asyncio.sleep(self.poll_freq)
            workdirs = {
                workdir.path: workdir for _, workdir in self.waiting.values()
            }
            asked = set(self.waiting)  # a job submitted later may not be listed
            try:
                listed = await self.shell.run(
                    self._command(list(workdirs.values()))
                )
            except OSError:  # the login node cannot be reached now: ask again
                continue
            if listed.status != 0:
                continue  # slurmctld busy or restarting: ask again
            lines = listed.stdout.decode().splitlines()
            jobs = listed_jobs(lines)
            for line in lines:  # before this server's jobs are seen ended
                if line.startswith(EXPIRED) and (
                    gone := expired_lease(line, list(workdirs))
                ):
                    await self._reap(*gone, jobs)
            self._settle(jobs, asked)

    def _command(self, workdirs: list[Workdir]) -> str:
        """Keep this server's leases, list the expired ones, list the jobs."""
        return "\n".join(
            [
                *(workdir.renewal() for workdir in workdirs),
                expired_leases([workdir.path for workdir in workdirs]),
                f"{self.squeue} --me --noheader --states=all "
                f"--format='{JOB_FIELDS}'",
            ]
        )

    def _settle(self, jobs: dict[str, tuple[JobEnd, str]], asked: set[str]) -> None:
        """End the wait for each job that has ended, or that Slurm forgot (of
        those ``asked`` about: waited for before ``squeue`` ran)."""
        for job_id, (ended, _) in list(self.waiting.items()):
            job = jobs[job_id][0] if job_id in jobs else None
            if job is not None:
                self.seen[job_id] = job
            elif job_id not in asked:
                continue
            if (job is None or job.state in ENDED_STATES) and not ended.done():
                ended.set_result(self.seen.pop(job_id, JobEnd("")))

    async def _reap(self, workdir: str, owner: str, jobs: dict) -> None:
        """Cancel the gone ``owner``'s jobs that have not ended, and remove its
        folders and lease in ``workdir``."""
        mark = f"{workdir}/{TASK_FOLDER_PREFIX}{owner}-"
        left = [
            job_id
            for job_id, (job, folder) in jobs.items()
            if folder.startswith(mark) and job.state not in ENDED_STATES
        ]
        cancel = cancel_and_wait(left, self.squeue, self.scancel)
        with suppress(OSError):  # not reached now: the lease says it next time
            await self.shell.run(reap(workdir, owner, cancel))


#: Seconds a cancelled job may take to end (its processes, its last lines) before
#: its folder is removed all the same.
END_WAIT_SECONDS = 15


def cancel_and_wait(job_ids: list[str], squeue: str, scancel: str) -> str:
    """Shell lines that cancel ``job_ids`` and wait until none of them runs any
    more, :data:`END_WAIT_SECONDS` at most: ``scancel`` only sends the signal, and
    a job that is ending still writes into its folder."""
    if not job_ids:
        return ""
    ended = "|".join(sorted(ENDED_STATES))
    listed = (
        f"{squeue} --noheader --states=all --format=%T "
        f"--jobs={shlex.quote(','.join(job_ids))} 2>/dev/null"
    )
    return "\n".join(
        [
            f"{scancel} {' '.join(map(shlex.quote, job_ids))}",
            f"for _ in $(seq {END_WAIT_SECONDS * 4}); do",
            f"  {listed} | grep -qvxE '{ended}' || break",  # all ended or forgotten
            "  sleep 0.25",
            "done",
        ]
    )


#: What ``squeue`` says of each job: id, state, node, working folder (last: it may
#: hold a ``|``).
JOB_FIELDS = "%i|%T|%N|%Z"


def listed_jobs(lines: list[str]) -> dict[str, tuple[JobEnd, str]]:
    """Each job ``squeue`` listed (lines of :data:`JOB_FIELDS`) and its folder."""
    jobs = {}
    for line in lines:
        fields = line.split("|", 3)
        if len(fields) == 4 and fields[0] != EXPIRED:
            jobs[fields[0]] = JobEnd(fields[1], fields[2]), fields[3]
    return jobs


_jobs: dict[tuple, SlurmJobs] = {}


def slurm_jobs(
    shell: Shell, squeue: str, scancel: str, poll_freq: float
) -> SlurmJobs:
    """The poller of ``shell``'s cluster for this event loop."""
    key = (shell.where, squeue, poll_freq, id(asyncio.get_running_loop()))
    if key not in _jobs:
        _jobs[key] = SlurmJobs(shell, squeue, scancel, poll_freq)
    return _jobs[key]


def final_state(job: JobEnd, exit: TaskExit, said: str) -> str:
    """Slurm's last state of the job; if Slurm forgot the job before it was seen
    ended, what the job's output file (``said``) and its task tell."""
    if job.state:
        return job.state
    if "DUE TO TIME LIMIT" in said:
        return "TIMEOUT"
    if "memory limit" in said:
        return "OUT_OF_MEMORY"
    if "CANCELLED AT" in said:
        return "CANCELLED"
    return "COMPLETED" if exit.exit_code == 0 else "FAILED"


def why_job_failed(job_id: str, state: str, exit: TaskExit, output: str) -> str:
    """Say why a job ended without the task's outcome, with Slurm's own words from
    the job's output file."""
    said = "\n".join(line for line in output.splitlines() if "slurmstepd" in line)
    job = f"Slurm job {job_id}"
    # The launcher's own line, when the job's Python exited VERSIONS_DIFFER; not the
    # launcher's source, which bash quotes when it reports the Python killed.
    versions = [
        line for line in output.splitlines() if line.startswith(VERSIONS_SAID)
    ]
    if versions:
        found = versions[-1].removeprefix(VERSIONS_SAID).strip()
        return (
            f"RuntimeError: {job}: the compute node's Python runs other versions "
            f"than this server ({found} there, {json.dumps(runtime_versions())} "
            "here). Set python_path to a Python with the server's Covalent and "
            "cloudpickle."
        )
    if state == "TIMEOUT":
        reason = f"TIMEOUT: {job} ran out of time (its --time limit)"
    elif state == "OUT_OF_MEMORY" or "memory limit" in said:
        reason = f"OUT_OF_MEMORY: {job} ran out of memory (its --mem limit)"
    elif state == "CANCELLED":
        reason = f"CANCELLED: {job} was cancelled outside Covalent (scancel)"
    elif exit.exit_code is not None:
        return f"{describe_exit(exit)}; {job} ended {state}"
    else:
        last = output.strip().splitlines()[-1:] or ["no output"]
        return f"RuntimeError: {job} ended {state} before the task began: {last[0]}"
    return f"{reason} before the task returned" + (f"\n{said}" if said else "")


# --8<-- [end:jobs]
