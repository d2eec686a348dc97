"""The executor's side of a launcher: start and cancel tasks and hear how they
end (:class:`TaskLauncher`), and the launcher in a child process of the server
(:class:`LocalLauncher`)."""

# --8<-- [start:launchers]
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from timing_executor.task_side.boot import (
    LAUNCHER_BOOT,
    boot_message,
    runtime_versions,
)
from timing_executor.task_side.launcher import serve_tasks
from timing_executor.task_side.messages import MessageReader, encode_message


@dataclass(frozen=True)
class TaskExit:
    """How a task ended, as its launcher reported it."""

    #: The exit code of the task's process, minus the signal that killed it, or
    #: None if it has no report.
    exit_code: int | None
    cpu_seconds: float = 0.0  #: The whole CPU time of the task's process.
    #: CPU time of the processes the task started and left, ended after it.
    others_cpu_seconds: float = 0.0
    #: The files the task left (``outcome.pkl``, ``stdout``, ``stderr``).
    files: dict = field(default_factory=dict)
    #: Why no report came (the launcher, or the connection to it, is gone).
    lost: str | None = None
    host: str | None = None  #: The name of the machine it ran on, given there.


@dataclass
class TaskState:
    """What the executor's process knows of one task."""

    exited: Future  #: Gets the :class:`TaskExit`.
    started: bool = False
    cancelled: bool = False


class TaskLauncher:
    """The executor's side of a launcher: start and cancel tasks, hear how they end.

    ``send`` hands bytes to the launcher, over whatever connects the two (a socket
    here, an SSH channel in ``ssh_timing``); what reads the launcher's answers
    passes each message to :meth:`hear`, and calls :meth:`lost` when none will come.
    """

    def __init__(self, send: Callable[[bytes], Any]) -> None:
        self.send = send
        self.lock = threading.Lock()
        self.tasks: dict[str, TaskState] = {}
        self.gone: str | None = None  #: Why the launcher is gone, once it is.

    def new_task(self) -> str:
        """Register a task; its id is the job handle Covalent keeps for it."""
        task_id = uuid.uuid4().hex
        with self.lock:
            self.tasks[task_id] = TaskState(exited=Future())
        return task_id

    def start(self, task_id: str, task: bytes) -> Future | None:
        """Start the pickled ``task``; ``None`` if it was cancelled before."""
        with self.lock:
            state = self.tasks[task_id]
            if state.cancelled:
                return None
            state.started = True
            if self.gone:
                state.exited.set_result(TaskExit(None, lost=self.gone))
            else:
                self.send(encode_message({"start": task_id}, {"task": task}))
        return state.exited

    def cancel(self, task_id: str) -> bool:
        """Stop the task and all it started, or keep it from starting.

        ``False`` if the task is unknown.
        """
        with self.lock:
            state = self.tasks.get(task_id)
            if state is None:
                return False
            state.cancelled = True
            if state.started and not self.gone:
                self.send(encode_message({"cancel": task_id}))
        return True

    def was_cancelled(self, task_id: str) -> bool:
        with self.lock:
            return self.tasks[task_id].cancelled

    def forget(self, task_id: str) -> None:
        with self.lock:
            self.tasks.pop(task_id, None)

    def hear(self, header: dict, files: dict[str, bytes]) -> None:
        """Take a message of the launcher: how a task ended."""
        with self.lock:
            state = self.tasks.get(header["ended"])
        if state is not None and not state.exited.done():
            state.exited.set_result(
                TaskExit(
                    header["exit_code"],
                    header["cpu_seconds"],
                    header.get("others_cpu_seconds", 0.0),
                    files,
                    host=header.get("host"),
                )
            )

    def lost(self, reason: str) -> None:
        """The launcher is gone: its running tasks end with ``reason``."""
        with self.lock:
            self.gone = reason
            states = list(self.tasks.values())
        for exited in (state.exited for state in states if state.started):
            with contextlib.suppress(InvalidStateError):  # it ended meanwhile
                exited.set_result(TaskExit(None, lost=reason))


class SpawnedProcess:
    """A child process started with ``posix_spawn``, whose file descriptors
    ``streams`` (``{its fd: ours}``) are ours. (``subprocess.Popen`` waits for the
    child's exec on a pipe, and a process forked from the server at that moment,
    as Covalent's ``local`` forks its pool workers, keeps that pipe open: Popen
    would wait for ever.)"""

    def __init__(self, argv: list[str], streams: dict[int, int]) -> None:
        redirect = [(os.POSIX_SPAWN_DUP2, ours, fd) for fd, ours in streams.items()]
        self.pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=redirect)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once the process has ended (and is reaped), else None."""
        return self._reap(os.WNOHANG)

    def wait(self) -> int | None:
        """Wait for the process to end; its exit code."""
        return self._reap(0)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def _reap(self, options: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, options)
            except ChildProcessError:  # reaped by someone else: gone all the same
                pid, status = self.pid, 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class LocalLauncher(TaskLauncher):
    """A launcher in a child process of this one, talked to over a socket pair."""

    def __init__(self) -> None:
        #: Each task's folder is made in here; whichever process outlives the
        #: other (this one or the launcher) removes it.
        self.folder = tempfile.mkdtemp(prefix="timing-executor-tasks-")
        ours, theirs = socket.socketpair()
        with theirs:
            versions = json.dumps(runtime_versions())
            self.process = SpawnedProcess(
                [sys.executable, "-c", LAUNCHER_BOOT, versions],
                {0: theirs.fileno(), 1: theirs.fileno()},
            )
        self.channel = ours
        super().__init__(ours.sendall)
        serve = partial(serve_tasks, self.folder, sys.path, own_workdir=True)
        ours.sendall(boot_message(serve))
        threading.Thread(target=self._hear_endings, daemon=True).start()

    def _hear_endings(self) -> None:
        reader = MessageReader()
        with contextlib.suppress(OSError):
            while data := self.channel.recv(1 << 20):  # until the launcher is gone
                for header, files in reader.feed(data):
                    self.hear(header, files)
        self.lost("the task launcher process died")
        shutil.rmtree(self.folder, ignore_errors=True)


_launcher: LocalLauncher | None = None
_launcher_lock = threading.Lock()


def task_launcher() -> LocalLauncher:
    """Return this process's launcher, starting it (again) if needed."""
    global _launcher
    with _launcher_lock:
        if (
            _launcher is None
            or _launcher.gone
            or _launcher.process.poll() is not None
        ):
            _launcher = LocalLauncher()
        return _launcher


def cancel_task(task_id: Any) -> bool:
    """Cancel the task with this job handle, if this process runs it."""
    launcher = _launcher
    known = isinstance(task_id, str) and launcher is not None
    return known and launcher.cancel(task_id)


# --8<-- [end:launchers]
