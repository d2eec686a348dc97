"""Time tasks on another machine over SSH: ``SSHTimingExecutor``.

The executor starts a *launcher* on the remote machine, once per connection, over
one SSH channel: the same launcher that runs tasks locally for ``TimingExecutor``
(:mod:`~timing_executor.task_side.launcher`), sent over by value, so the remote
machine needs Python and Covalent but not this package. The launcher forks each
task into a process of its own under a supervisor, which measures its CPU time
there and ends every process it left. The task's outcome and output come back
over the channel; the record is appended here, on the server.
"""

# --8<-- [start:imports]
import asyncio
import contextlib
import json
import os
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncssh
import cloudpickle
from covalent._shared_files.exceptions import TaskCancelledError
from covalent.executor.base import AsyncBaseExecutor
from covalent.executor.schemas import TaskUpdate

from timing_executor import task_side
from timing_executor.server_side.defaults import empty_means_default
from timing_executor.server_side.launchers import TaskLauncher
from timing_executor.server_side.records import (
    DEFAULT_TIMING_FILEPATH,
    TaskRecord,
    check_record_format,
    resolve_timing_filepath,
    task_ids,
    task_name,
)
from timing_executor.server_side.reporting import refused_tasks, report_end
from timing_executor.server_side.ssh_connection import (
    LoginFailed,
    SSHTarget,
    check_port,
    connection,
    covalent_folders,
    discard,
    environment,
    remote_quote,
    target_of,
)
from timing_executor.server_side.task_runs import TaskEnd, TaskRun
from timing_executor.task_side.boot import (
    LAUNCHER_BOOT,
    VERSIONS_DIFFER,
    VERSIONS_SAID,
    boot_message,
    runtime_versions,
)
from timing_executor.task_side.launcher import LAUNCHER_UNHEARD, serve_tasks
from timing_executor.task_side.messages import MessageReader, encode_message

# The launcher and the code that runs tasks go to the remote machine by value.
cloudpickle.register_pickle_by_value(task_side)
# --8<-- [end:imports]


# --8<-- [start:remote-side]
#: Seconds between the messages that tell a launcher its executor is still there.
HEARTBEAT_SECONDS = 2.0


@dataclass(frozen=True)
class RemoteSide:
    """How the launcher starts on the remote machine."""

    python_path: str
    remote_workdir: str
    env: tuple[tuple[str, str], ...] = ()
    prerun_command: str = ""
    #: Seconds without a message from here after which the launcher stops its
    #: tasks and ends.
    heartbeat_timeout: float = 60.0

    def command(self) -> str:
        """The command that starts the launcher: ``sh -c`` runs it, whatever the
        remote user's shell. Covalent there keeps its configuration, and every
        folder it makes, in a temporary folder, removed when the launcher ends."""
        workdir = remote_quote(self.remote_workdir)
        steps = [f"mkdir -p {workdir}", f"cd {workdir}"]
        if self.prerun_command:
            steps.append(self.prerun_command)
        exports = "".join(f"{name}={shlex.quote(v)} " for name, v in self.env)
        python = remote_quote(self.python_path)
        versions = shlex.quote(json.dumps(runtime_versions()))
        folders = covalent_folders('"$config"')  # all that Covalent makes there
        launch = (
            f"{exports}{folders} {python}"
            f" -c {shlex.quote(LAUNCHER_BOOT)} {versions}"
        )
        steps.append(
            f'config=$(mktemp -d) && {{ {launch}; status=$?; rm -rf "$config"; '
            "exit $status; }"
        )
        return "sh -c " + shlex.quote(" && ".join(steps))


class RemoteLauncher(TaskLauncher):
    """A launcher on another machine, talked to over one channel of an SSH
    connection. Its tasks fail with a message naming ``host:port`` when it ends.
    A heartbeat every ``HEARTBEAT_SECONDS`` (2 s), sent from the event loop, tells
    it that this side is still there."""

    def __init__(
        self,
        process: asyncssh.SSHClientProcess,
        target: SSHTarget,
        side: RemoteSide,
    ) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(partial(loop.call_soon_threadsafe, process.stdin.write))
        self.process, self.target, self.side = process, target, side
        serve = partial(serve_tasks, ".", silence_limit=side.heartbeat_timeout)
        process.stdin.write(boot_message(serve))
        self.hearing = asyncio.create_task(self._hear_endings())
        self.beating = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        heartbeat = encode_message({"heartbeat": True})
        with contextlib.suppress(asyncssh.Error, OSError):  # the channel closed
            while not self.gone:
                self.process.stdin.write(heartbeat)
                await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _hear_endings(self) -> None:
        reader, errors = MessageReader(), bytearray()
        gathering = asyncio.create_task(_gather(self.process.stderr, errors))
        try:
            while data := await self.process.stdout.read(1 << 20):
                for header, files in reader.feed(data):
                    self.hear(header, files)
        except (asyncssh.Error, OSError):
            pass  # the connection dropped: said below
        # The exit status may come after the end of the output: wait for the
        # channel to close, which a dropped connection does at once.
        closing = asyncio.ensure_future(self.process.wait_closed())
        await asyncio.wait([gathering, closing], timeout=5)
        status = self.process.exit_status
        self.lost(self.why_ended(status, errors.decode(errors="replace")))
        self.beating.cancel()

    def why_ended(self, status: int | None, stderr: str) -> str:
        """Say why the launcher ended, and what to do."""
        where, python = self.target.where, self.side.python_path
        if status == VERSIONS_DIFFER:
            found = stderr.rpartition(VERSIONS_SAID)[2].strip()
            wanted = runtime_versions()
            pins = " ".join(
                f"{name}=={wanted[name]}" for name in ("covalent", "cloudpickle")
            )
            return (
                f"{where}: {python} runs other versions than this server "
                f"({found} there, {json.dumps(wanted)} here), so tasks pickled "
                f"here may not unpickle there. Install them there ({python} -m "
                f"pip install {pins}, with Python {wanted['python']}), or set "
                "python_path to a Python that has them."
            )
        if status == LAUNCHER_UNHEARD:
            seconds = self.side.heartbeat_timeout
            return (
                f"the task launcher on {where} heard nothing from this server "
                f"for {seconds:g} s (heartbeat_timeout), so it stopped its tasks "
                "and ended: the connection died silently, or this server's "
                "process was stopped or frozen that long"
            )
        if status == 127:
            return (
                f"{where}: the remote Python {python!r} was not found "
                f"({stderr.strip()}). Set python_path to its absolute path there: "
                "SSH commands run with a short PATH."
            )
        if status is None:
            return f"the connection to {where} was lost while the task ran"
        return (
            f"the task launcher on {where} ended with exit status {status}: "
            f"{stderr.strip()[-2000:]}"
        )


async def _gather(stream: asyncssh.SSHReader, into: bytearray) -> None:
    """Read ``stream`` to its end into ``into``, keeping the last 64 kB."""
    with contextlib.suppress(asyncssh.Error, OSError):
        while data := await stream.read(1 << 16):
            into += data
            del into[: -(1 << 16)]


#: The launchers, by target, remote side and event loop.
_launchers: dict[tuple, RemoteLauncher] = {}
_starting: dict[tuple, asyncio.Lock] = {}


async def remote_launcher(target: SSHTarget, side: RemoteSide) -> RemoteLauncher:
    """The running launcher for ``target`` and ``side``, started if needed."""
    key = (target, side, id(asyncio.get_running_loop()))
    async with _starting.setdefault(key, asyncio.Lock()):
        launcher = _launchers.get(key)
        if launcher is None or launcher.gone:
            try:
                process = await (await connection(target)).create_process(
                    side.command(), encoding=None
                )
            except LoginFailed:
                raise
            except (asyncssh.Error, OSError):  # the connection had dropped
                discard(target)
                process = await (await connection(target)).create_process(
                    side.command(), encoding=None
                )
            _launchers[key] = RemoteLauncher(process, target, side)
        return _launchers[key]


def find_launcher(target: SSHTarget, side: RemoteSide) -> RemoteLauncher | None:
    """The launcher for ``target`` and ``side`` of this event loop, if one runs."""
    return _launchers.get((target, side, id(asyncio.get_running_loop())))


# --8<-- [end:remote-side]


# --8<-- [start:plugin-attributes]
executor_plugin_name = "SSHTimingExecutor"

_EXECUTOR_PLUGIN_DEFAULTS = {
    "hostname": "",
    "port": 22,
    "username": "",
    "ssh_key_file": "",
    "known_hosts": "~/.ssh/known_hosts",
    "python_path": "python3",
    "remote_workdir": "covalent-workdir",
    "env": {},
    "prerun_command": "",
    "connect_timeout": 10.0,
    "heartbeat_timeout": 60.0,
    "timing_filepath": DEFAULT_TIMING_FILEPATH,
    "record_format": "text",
}

#: Threads for pickling and unpickling tasks, off the event loop.
_pickling_threads = ThreadPoolExecutor(4, thread_name_prefix="ssh-timing")


@dataclass(frozen=True)
class RemoteTaskRecord(TaskRecord):
    """A task's record, with the machine that ran it."""

    #: The name of the machine the task ran on, as it gives it there
    #: (``socket.gethostname()``); None if the task never started there.
    host: str | None = None


# --8<-- [end:plugin-attributes]


def check_heartbeat_timeout(seconds: object) -> float:
    """Return ``seconds`` if it leaves room for a few heartbeats; else raise a
    ``ValueError``."""
    least = 5 * HEARTBEAT_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(
            f"heartbeat_timeout {seconds!r} is not a number of seconds."
        )
    if not seconds >= least:
        raise ValueError(
            f"heartbeat_timeout {seconds!r} is too short: give at least "
            f"{least:g} s (a heartbeat goes every {HEARTBEAT_SECONDS:g} s), so "
            "that a busy server does not stop the remote tasks."
        )
    return float(seconds)


# --8<-- [start:executor]
@empty_means_default(_EXECUTOR_PLUGIN_DEFAULTS)
class SSHTimingExecutor(AsyncBaseExecutor):
    """Run each task on another machine over SSH and record its CPU time.

    Args:
        hostname: The machine to run tasks on.
        port: Its SSH port.
        username: Who to log in as; empty: the user the server runs as.
        ssh_key_file: The private key to log in with; empty: the default keys
            (``~/.ssh/id_*``) and the SSH agent.
        known_hosts: The file of trusted host keys; the host's key is always
            checked against it.
        python_path: The Python that runs tasks there, with the same Covalent,
            cloudpickle and Python minor version as the server. Best absolute:
            SSH commands run with a short ``PATH``.
        remote_workdir: The folder tasks run in there (made if missing); relative
            paths start at the remote user's home.
        env: Environment variables for the tasks.
        prerun_command: A shell command run there before the tasks' Python starts,
            such as ``source ~/venv/bin/activate`` or ``module load python``.
        connect_timeout: Seconds to wait for the login.
        heartbeat_timeout: Seconds the remote side goes on without word from this
            server (a heartbeat goes every 2 s) before it stops the tasks and ends:
            when the connection died silently, nothing is left running there.
        timing_filepath: File the records are appended to, on the server.
        record_format: ``"text"`` or ``"jsonl"`` (which adds the host).
        **kwargs: Options every Covalent executor takes, such as ``log_stdout``.

    Raises:
        ValueError: If a value cannot work (the message names it and the fix).
    """

    def __init__(
        self,
        hostname: str = "",
        port: int = 22,
        username: str = "",
        ssh_key_file: str = "",
        known_hosts: str = "~/.ssh/known_hosts",
        python_path: str = "python3",
        remote_workdir: str = "covalent-workdir",
        env: dict[str, str] | None = None,
        prerun_command: str = "",
        connect_timeout: float = 10.0,
        heartbeat_timeout: float = 60.0,
        timing_filepath: str | os.PathLike = DEFAULT_TIMING_FILEPATH,
        record_format: str = "text",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hostname, self.port, self.username = hostname, port, username
        self.ssh_key_file, self.known_hosts = ssh_key_file, known_hosts
        self.python_path, self.remote_workdir = python_path, remote_workdir
        self.env, self.prerun_command = dict(env or {}), prerun_command
        self.connect_timeout = connect_timeout
        self.heartbeat_timeout = check_heartbeat_timeout(heartbeat_timeout)
        self.timing_filepath = resolve_timing_filepath(timing_filepath)
        self.record_format = check_record_format(record_format)
        check_port(port)  # values that cannot work fail here, on the client
        self.side()

    def side(self) -> RemoteSide:
        env = environment(self.env)
        return RemoteSide(
            self.python_path,
            self.remote_workdir,
            env,
            self.prerun_command,
            self.heartbeat_timeout,
        )

    async def run(
        self, function: Callable, args: list, kwargs: dict, task_metadata: dict
    ) -> Any:
        """Run the task in a process of its own on the remote machine."""
        task_ids(task_metadata)  # bad metadata fails before anything starts
        report = partial(report_end, record_type=RemoteTaskRecord)
        name, started_at = task_name(function), time.time()
        try:
            launcher = await remote_launcher(target_of(self).check(), self.side())
        except (ConnectionError, ValueError) as error:
            end = TaskEnd("FAILED", started_at, 0.0, 0.0)
            end.error = f"{type(error).__name__}: {error}"
            end.report = end.error + "\n"
            return report(end, task_metadata, name, self, host=None)
        loop = asyncio.get_running_loop()
        task = TaskRun(launcher)
        try:
            if hasattr(self, "_send_queue"):  # run by Covalent, not called by hand
                await self.set_job_handle(task.task_id)  # what cancel() gets back
                if await self.get_cancel_requested():  # asked before it was saved
                    launcher.cancel(task.task_id)
            start = partial(task.start, function, args, kwargs, cwd=".")
            if not await loop.run_in_executor(_pickling_threads, start):
                raise TaskCancelledError("The task was cancelled before it began.")
            ended = await asyncio.wrap_future(task.exited)  # the loop stays free
            end = await loop.run_in_executor(_pickling_threads, task.end)
        finally:
            task.discard()
        return await loop.run_in_executor(
            _pickling_threads,
            partial(report, end, task_metadata, name, self, host=ended.host),
        )

    async def cancel(self, task_metadata: dict, job_handle: Any) -> bool:
        """Stop the task and every process it started on the remote machine.

        Covalent calls this on a new executor, for every node of the dispatch;
        the launcher of this executor's host and settings knows the task.
        """
        if not isinstance(job_handle, str) or not self.hostname:
            return False
        launcher = find_launcher(target_of(self), self.side())
        return launcher is not None and launcher.cancel(job_handle)

    async def receive(
        self, task_group_metadata: dict, data: Any
    ) -> list[TaskUpdate]:
        """Report CANCELLED the tasks Covalent refused to start."""
        return refused_tasks(task_group_metadata, data)


# --8<-- [end:executor]
