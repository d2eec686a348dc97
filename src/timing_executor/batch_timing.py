"""Time tasks the way cloud batch services run them: ``BatchTimingExecutor``.

The server puts each task into an S3 bucket, submits one batch job per task
through Slurm's REST API (``slurmrestd``) and polls all its jobs there with one
request. The job shares no folder with the server and gets no credentials: only
presigned URLs, to read its task and to write each file of its outcome
(:mod:`~timing_executor.task_side.staged_task`). It runs the task under the same
supervisor as every executor of this package, sent in the job's script by value, so
the compute node needs Python and Covalent but not this package. The server reads
what the job left, appends the record here, and removes every object of the task,
however it ended. ``ct.cancel`` cancels the job through the API.
"""

# --8<-- [start:imports]
import getpass
import json
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

import cloudpickle
from covalent.executor.base import AsyncBaseExecutor
from covalent.executor.schemas import TaskUpdate

from timing_executor import task_side
from timing_executor.server_side.batch_orphans import sweep_now_and_then
from timing_executor.server_side.defaults import empty_means_default
from timing_executor.server_side.launchers import TaskExit
from timing_executor.server_side.object_store import ObjectStore, TaskObjects
from timing_executor.server_side.records import (
    DEFAULT_TIMING_FILEPATH,
    TaskRecord,
    check_record_format,
    resolve_timing_filepath,
    task_ids,
    task_name,
)
from timing_executor.server_side.reporting import refused_tasks, report_end
from timing_executor.server_side.slurm_job_scripts import JobScript
from timing_executor.server_side.slurm_rest_api import (
    JobState,
    SlurmRestApi,
    SlurmRestError,
    rest_jobs,
)
from timing_executor.server_side.task_runs import TaskEnd, describe_exit, task_end
from timing_executor.task_side.boot import VERSIONS_DIFFER, runtime_versions
from timing_executor.task_side.staged_task import run_staged_task

# The job's runner and the supervisor go to the compute node by value.
cloudpickle.register_pickle_by_value(task_side)
# --8<-- [end:imports]


# --8<-- [start:job]
#: Fields of the job's description that the executor sets itself.
OWN_FIELDS = (
    "script", "environment", "current_working_directory", "standard_output",
    "standard_error", "standard_input",
)  # fmt: skip
#: The job's first lines, which give it a folder of its own on the compute node,
#: removed at the job's end; a cancel (SIGTERM) ends the script once the runner has
#: uploaded.
JOB_PREAMBLE = [
    "#!/bin/bash",
    'folder=$(mktemp -d "${TMPDIR:-/tmp}/covalent-task-XXXXXXXX") || exit 1',
    "trap 'cd / && rm -rf \"$folder\"' EXIT",
    "trap 'exit 143' TERM",
    # A job of the REST API gets only the environment it was given; Covalent
    # needs HOME (bash's ~ then reads the user's home from the password database).
    '[ -n "$HOME" ] || export HOME=~',
    'cd "$folder" || exit 1',
]


def job_fields(job_options: dict[str, Any]) -> dict[str, Any]:
    """``job_options`` (fields of the API's job description, such as
    ``{"time_limit": 10}``), checked."""
    for name in job_options:
        if name in OWN_FIELDS:
            raise ValueError(
                f"job_options may not set {name!r}: the executor gives each job "
                "its script, its environment (from env), / as its folder, and no "
                "files for its output (its task's output comes back through the "
                "bucket)."
            )
    return dict(job_options)


def why_job_failed(job_id: str, job: JobState, store: ObjectStore) -> str:
    """Say why a job ended without the task's outcome, with the API's words."""
    name = f"Slurm job {job_id}"
    if job.exit_code is not None and job.exit_code >> 8 == VERSIONS_DIFFER:
        return (
            f"RuntimeError: {name}: the compute node's Python runs other versions "
            f"than this server ({json.dumps(runtime_versions())}). Set python_path "
            "to a Python with the server's Covalent and cloudpickle"
        )
    said = f"state {job.state or 'unknown'}, reason {job.reason or 'none'}"
    before = "before the task returned"
    if job.state == "TIMEOUT":
        return f"TIMEOUT: {name} ran out of time (its time_limit) {before}"
    if job.state in (
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    ):
        return f"{job.state}: {name} ended {before} ({said})"
    if job.state == "CANCELLED":
        return f"CANCELLED: {name} was cancelled outside Covalent ({said})"
    if not job.state:
        return (
            f"RuntimeError: {name} was forgotten by Slurm before it was seen ended"
        )
    return (
        f"RuntimeError: {name} ended ({said}, exit status {job.exit_code}) without "
        f"leaving the task's outcome in {store.where()}: can the compute node "
        "reach the object store, and does python_path start there?"
    )


# --8<-- [end:job]


# --8<-- [start:plugin-attributes]
executor_plugin_name = "BatchTimingExecutor"

_EXECUTOR_PLUGIN_DEFAULTS = {
    "rest_url": "",
    "rest_user": "",
    "token_file": "",
    "bucket": "",
    "s3_endpoint_url": "",
    "s3_region": "",
    "aws_profile": "",
    "partition": "",
    "job_options": {},
    "python_path": "python3",
    "env": {},
    "prerun_commands": [],
    "postrun_commands": [],
    "poll_freq": 2.0,
    "unreachable_timeout": 120.0,
    "url_lifetime": 86400,
    "timing_filepath": DEFAULT_TIMING_FILEPATH,
    "record_format": "text",
}

#: The PATH a job gets unless ``env`` gives one.
JOB_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class BatchTaskRecord(TaskRecord):
    """A task's record, with its job."""

    job_id: str | None = None  #: Slurm's id of the task's job.
    node: str | None = None  #: The compute node that ran it.
    state: str | None = None  #: The API's last state of the job, such as COMPLETED.


# --8<-- [end:plugin-attributes]


# --8<-- [start:executor]
@empty_means_default(_EXECUTOR_PLUGIN_DEFAULTS)
class BatchTimingExecutor(AsyncBaseExecutor):
    """Stage each task in an S3 bucket, run it as a batch job submitted through
    Slurm's REST API, and record its CPU time.

    Args:
        rest_url: slurmrestd's URL, such as ``http://login.example.org:6820``.
        rest_user: The user the jobs run as; empty: the server's own user.
        token_file: A file on the server holding that user's JSON Web Token,
            read at each request; empty: the server's ``SLURM_JWT`` variable.
        bucket: The S3 bucket tasks are staged in.
        s3_endpoint_url: The object store's URL; empty: AWS S3 for ``s3_region``.
        s3_region: The bucket's region.
        aws_profile: A profile of the server's AWS configuration
            (``~/.aws/credentials``); empty: boto3's default credentials.
        partition: The partition jobs go to; empty: the cluster's default.
        job_options: More fields of the API's job description, such as
            ``{"time_limit": 10, "cpus_per_task": 2, "memory_per_node": 4096}``.
        python_path: The Python that runs the task on the compute node, with the
            server's Covalent, cloudpickle and Python minor version.
        env: Environment variables of the job (``PATH`` by default
            ``/usr/local/bin:/usr/bin:/bin``; ``TMPDIR`` where its folder goes).
        prerun_commands: Shell lines the job runs before the task.
        postrun_commands: Shell lines the job runs after the task.
        poll_freq: Seconds between two questions to the API about the jobs.
        unreachable_timeout: Seconds without an answer from slurmrestd after which
            the tasks waiting for their jobs fail.
        url_lifetime: Seconds the job's URLs stay valid: longer than a job waits
            in the queue and runs (at most 604800, S3's limit).
        timing_filepath: File the records are appended to, on the server.
        record_format: ``"text"`` or ``"jsonl"`` (which adds the job's id, node and
            final state).
        **kwargs: Options every Covalent executor takes, such as ``log_stdout``.
    """

    def __init__(
        self,
        rest_url: str = "",
        rest_user: str = "",
        token_file: str = "",
        bucket: str = "",
        s3_endpoint_url: str = "",
        s3_region: str = "",
        aws_profile: str = "",
        partition: str = "",
        job_options: dict[str, Any] | None = None,
        python_path: str = "python3",
        env: dict[str, str] | None = None,
        prerun_commands: list[str] | None = None,
        postrun_commands: list[str] | None = None,
        poll_freq: float = 2.0,
        unreachable_timeout: float = 120.0,
        url_lifetime: int = 86400,
        timing_filepath: str | os.PathLike = DEFAULT_TIMING_FILEPATH,
        record_format: str = "text",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rest_url, self.rest_user, self.token_file = (
            rest_url,
            rest_user,
            token_file,
        )
        self.bucket, self.s3_endpoint_url = bucket, s3_endpoint_url
        self.s3_region, self.aws_profile = s3_region, aws_profile
        self.partition, self.job_options = partition, job_fields(job_options or {})
        self.python_path, self.env = python_path, dict(env or {})
        self.prerun_commands = list(prerun_commands or [])
        self.postrun_commands = list(postrun_commands or [])
        self.poll_freq, self.unreachable_timeout = poll_freq, unreachable_timeout
        self.url_lifetime = url_lifetime
        self.timing_filepath = resolve_timing_filepath(timing_filepath)
        self.record_format = check_record_format(record_format)
        # Empty values are checked in run(): the server first builds each executor
        # from the plugin's defaults, then gives it the client's attributes.
        if rest_url and not rest_url.startswith(("http://", "https://")):
            raise ValueError(
                f"rest_url {rest_url!r} is not an http:// or https:// URL: give "
                "slurmrestd's, such as 'http://login.example.org:6820'."
            )
        for name in ("poll_freq", "unreachable_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(
                    f"{name} {value!r} is not a number of seconds > 0."
                )
        if not isinstance(url_lifetime, int) or not 1 <= url_lifetime <= 604800:
            raise ValueError(
                f"url_lifetime {url_lifetime!r} is not a whole number of seconds "
                "from 1 to 604800 (7 days, the longest a presigned URL may last)."
            )

    def check_given(self) -> None:
        """Fail, naming them, if the options without defaults are still empty."""
        for name, what in (
            (
                "rest_url",
                "slurmrestd's URL, such as 'http://login.example.org:6820'",
            ),
            ("bucket", "the S3 bucket tasks are staged in"),
        ):
            if not getattr(self, name):
                raise ValueError(
                    f"{name} is empty: give {what} (as an argument, or in "
                    f"[executors.batch_timing] of covalent.conf)."
                )

    def store(self) -> ObjectStore:
        return ObjectStore(
            self.bucket, self.s3_endpoint_url, self.s3_region, self.aws_profile
        )

    def api(self) -> SlurmRestApi:
        return SlurmRestApi(
            self.rest_url, self.rest_user or getpass.getuser(), self.token_file
        )

    def job(
        self, name: str, task_url: str, outcome_urls: dict[str, str]
    ) -> tuple[dict, str]:
        """The job's description and script, for the task at ``task_url``."""
        runner = partial(run_staged_task, task_url, outcome_urls)
        lines = JobScript(
            self.python_path,
            prerun_commands=tuple(self.prerun_commands),
            postrun_commands=tuple(self.postrun_commands),
        ).run_lines(runner)
        description = {
            "name": name,
            "current_working_directory": "/",
            "environment": {"PATH": JOB_PATH, **self.env},
            "standard_output": "/dev/null",
            "standard_error": "/dev/null",
            **({"partition": self.partition} if self.partition else {}),
            **self.job_options,
        }
        return description, "\n".join([*JOB_PREAMBLE, *lines, ""])

    async def run(
        self, function: Callable, args: list, kwargs: dict, task_metadata: dict
    ) -> Any:
        """Stage the task, run it as a batch job; record it; return its result."""
        dispatch_id, node_id = task_ids(task_metadata)
        started_at, wall_start = time.time(), time.perf_counter()
        details: dict[str, Any] = {"job_id": None, "node": None, "state": None}
        report = partial(report_end, record_type=BatchTaskRecord)
        name = task_name(function)
        store, api = self.store(), self.api()
        expires = int(time.time()) + self.url_lifetime  # see batch_orphans
        objects = TaskObjects(store, expires, f"{dispatch_id}-{node_id}")
        job_id, job = None, None
        try:
            self.check_given()
            sweep_now_and_then(store, api)
            await objects.put_task(cloudpickle.dumps((".", function, args, kwargs)))
            task_url, outcome_urls = await objects.urls(self.url_lifetime)
            job_name = f"covalent-{expires}-{dispatch_id[:8]}-{node_id}"
            job_id = await api.submit(*self.job(job_name, task_url, outcome_urls))
            details["job_id"] = job_id
            if hasattr(self, "_send_queue"):  # run by Covalent, not called by hand
                await self.set_job_handle(job_id)  # what cancel() gets back
                if await self.get_cancel_requested():  # asked before it was saved
                    await self.cancel(task_metadata, job_id)
            job = await rest_jobs(
                api, self.poll_freq, self.unreachable_timeout
            ).end_of(job_id)
            details["node"], details["state"] = job.node or None, job.state or None
            files = await objects.outcome()
        except BaseException as error:  # a fault, or the server stops
            if job_id is not None and job is None:  # it would upload later
                with suppress(ConnectionError):
                    await api.cancel_and_wait(job_id)
            if not isinstance(error, (ConnectionError, ValueError)):
                with suppress(ConnectionError):
                    await objects.remove()
                raise
            end = TaskEnd(
                "FAILED", started_at, 0.0, time.perf_counter() - wall_start
            )
            end.error = f"{type(error).__name__}: {error}"
            end.report = end.error + "\n"
            await self._remove(objects, end)
            return report(end, task_metadata, name, self, **details)
        ended = json.loads(files.get("ended.json") or b"{}")
        exit = TaskExit(
            exit_code=ended.get("exit_code"),
            cpu_seconds=ended.get("cpu_seconds", 0.0),
            others_cpu_seconds=ended.get("others_cpu_seconds", 0.0),
            files=files,
        )
        cancelled = (
            hasattr(self, "_send_queue") and await self.get_cancel_requested()
        )
        if exit.exit_code is None:  # the supervisor left no word
            why = why_job_failed(job_id, job, store)
        else:
            why = describe_exit(exit)
            why += f"; Slurm job {job_id} ended {job.state}"
        wall_seconds = time.perf_counter() - wall_start
        end = task_end(exit, started_at, wall_seconds, cancelled, why)
        await self._remove(objects, end)
        return report(end, task_metadata, name, self, **details)

    async def _remove(self, objects: TaskObjects, end: TaskEnd) -> None:
        """Remove the task's objects; if that fails, the task fails saying so."""
        try:
            await objects.remove()
        except ConnectionError as error:
            end.status, end.result = "FAILED", None
            end.error = f"{type(error).__name__}: {error}"
            end.report = (end.report or "") + end.error + "\n"

    async def cancel(self, task_metadata: dict, job_handle: Any) -> bool:
        """Cancel the task's job through the API: Slurm stops all its processes.

        Covalent calls this on a new executor, for every node of the dispatch; the
        job handle is the job's id, or None for a node that never had a job.
        """
        if not isinstance(job_handle, str):
            return False
        try:
            await self.api().cancel(job_handle)
        except SlurmRestError:
            return False
        return True

    async def receive(
        self, task_group_metadata: dict, data: Any
    ) -> list[TaskUpdate]:
        """Report CANCELLED the tasks Covalent refused to start."""
        return refused_tasks(task_group_metadata, data)


# --8<-- [end:executor]
