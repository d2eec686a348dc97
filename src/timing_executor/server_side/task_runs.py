"""One task in a process of its own, seen from the server (:class:`TaskRun`), and
how it ended (:class:`TaskEnd`), from what it left."""

# --8<-- [start:task-runs]
import os
import pickle
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import cloudpickle

from timing_executor.server_side.launchers import (
    TaskExit,
    TaskLauncher,
    task_launcher,
)
from timing_executor.task_side.task_process import TaskOutcome


@dataclass
class TaskEnd:
    """How a task ended, as the executor reports and records it."""

    status: str  #: ``"COMPLETED"``, ``"FAILED"`` or ``"CANCELLED"``.
    started_at: float
    cpu_seconds: float
    wall_seconds: float
    result: Any = None
    error: str | None = None  #: What went wrong, in one line.
    report: str | None = None  #: The traceback, or what happened to the process.
    stdout: str = ""
    stderr: str = ""


def describe_exit(exit: TaskExit) -> str:
    """Say, in one line, why a task's process ended without an outcome."""
    if exit.lost is not None:
        return f"RuntimeError: {exit.lost}"
    if exit.exit_code is None or exit.exit_code == 0:
        return "RuntimeError: the task's process ended without a result"
    if exit.exit_code < 0:
        name = signal.Signals(-exit.exit_code).name
        oom = " (often the out-of-memory killer)" if name == "SIGKILL" else ""
        number = -exit.exit_code
        return f"{name}: the task's process was killed by signal {number}{oom}"
    return (
        f"exit code {exit.exit_code}: the task's process exited before the task "
        "returned (os._exit() or a crash in C code)"
    )


class TaskRun:
    """One task in a process of its own, seen from the executor's side."""

    def __init__(self, launcher: TaskLauncher | None = None) -> None:
        self.launcher = launcher or task_launcher()
        self.task_id = self.launcher.new_task()
        self.exited: Future | None = None

    def start(
        self, function: Callable, args: list, kwargs: dict, cwd: str | None = None
    ) -> bool:
        """Hand the task to the launcher, to run in ``cwd`` (by default this
        process's folder); ``False`` if it was cancelled before."""
        task = cloudpickle.dumps((cwd or os.getcwd(), function, args, kwargs))
        self.started_at, self.wall_start = time.time(), time.perf_counter()
        self.exited = self.launcher.start(self.task_id, task)
        return self.exited is not None

    def end(self) -> TaskEnd:
        """Read what the finished task left behind, say how it ended."""
        try:
            return self._read_end()
        finally:
            self.discard()

    def discard(self) -> None:
        """Stop the task if it still runs, and forget it."""
        if self.exited is None or not self.exited.done():
            self.launcher.cancel(self.task_id)
        self.launcher.forget(self.task_id)

    def _read_end(self) -> TaskEnd:
        wall_seconds = time.perf_counter() - self.wall_start
        cancelled = self.launcher.was_cancelled(self.task_id)
        exit = self.exited.result()
        return task_end(exit, self.started_at, wall_seconds, cancelled)


def task_end(
    exit: TaskExit,
    started_at: float,
    wall_seconds: float,
    cancelled: bool,
    why: str | None = None,
) -> TaskEnd:
    """How a task ended, from what it left (``exit``): its outcome if it has one;
    else cancelled, or failed for ``why`` (by default, how its process ended)."""
    outputs = {
        name: exit.files.get(name, b"").decode(errors="replace")
        for name in ("stdout", "stderr")
    }
    if "outcome.pkl" in exit.files:
        outcome: TaskOutcome = pickle.loads(exit.files["outcome.pkl"])
        return TaskEnd(
            status="COMPLETED" if outcome.error is None else "FAILED",
            started_at=outcome.started_at,
            cpu_seconds=outcome.cpu_seconds + exit.others_cpu_seconds,
            wall_seconds=outcome.wall_seconds,
            result=outcome.result,
            error=outcome.error,
            report=outcome.traceback,
            **outputs,
        )
    cpu_seconds = exit.cpu_seconds + exit.others_cpu_seconds
    end = TaskEnd("CANCELLED", started_at, cpu_seconds, wall_seconds, **outputs)
    if cancelled:
        end.report = "The task was cancelled: its process was killed.\n"
    else:
        end.status, end.error = "FAILED", why or describe_exit(exit)
        end.report = end.error + ".\n"
    return end


# --8<-- [end:task-runs]
