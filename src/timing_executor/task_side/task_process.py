"""The task's own process: load the task from its folder, call it under the
stopwatch, write its outcome and output there, exit."""

# --8<-- [start:task-process]
import ctypes
import io
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import cloudpickle

from timing_executor.task_side.measuring import Stopwatch, timed_task


@dataclass
class TaskOutcome:
    """What a task's process reports when the task returns or raises."""

    started_at: float
    cpu_seconds: float
    wall_seconds: float
    result: Any = None
    error: str | None = None  #: ``"ValueError: message"`` when the task raised.
    traceback: str | None = None


def failed_outcome(exc: BaseException, note: str = "") -> TaskOutcome:
    """The outcome of a task that raised ``exc``, traced from the task on."""
    frames = exc.__traceback__.tb_next if exc.__traceback__ else None
    trace = "".join(traceback.format_exception(type(exc), exc, frames))
    return TaskOutcome(
        started_at=time.time(),
        cpu_seconds=0.0,
        wall_seconds=0.0,
        error=f"{type(exc).__name__}: {exc}",
        traceback=note + trace,
    )


def call_and_measure(function: Callable, args: list, kwargs: dict) -> TaskOutcome:
    """Call the task; measure the CPU time of this process (and its children).

    This runs in the task's own process, so all of the process's CPU time while
    the user's function runs is the task's, its threads and subprocesses included.
    """
    stopwatch = Stopwatch()
    try:
        result = timed_task(function, stopwatch)(*args, **kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt as well
        outcome = failed_outcome(exc)
    else:
        outcome = TaskOutcome(0.0, 0.0, 0.0, result=result)
    outcome.started_at = stopwatch.started_at
    outcome.cpu_seconds = stopwatch.cpu_seconds
    outcome.wall_seconds = stopwatch.wall_seconds
    return outcome


def redirect_output(folder: str) -> None:
    """Send file descriptors 1 and 2 to files in ``folder``; read nothing on 0.

    Output of ``print``, of C code and of subprocesses all lands there, and
    ``sys.stdout`` writes through at once, so nothing is lost if the process dies.
    """
    for fd, name in ((1, "stdout"), (2, "stderr")):
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        file_fd = os.open(os.path.join(folder, name), flags, 0o600)
        os.dup2(file_fd, fd)
        os.close(file_fd)
        stream = io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),
            encoding="utf-8",
            errors="backslashreplace",
            write_through=True,
        )
        setattr(sys, name, stream)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)


def run_task_process(folder: str) -> NoReturn:
    """The life of a task's process: run the task in ``folder``, report, exit.

    ``os._exit`` ends the process even if the task left threads running.
    """
    status = 0
    try:
        redirect_output(folder)
        try:
            with open(os.path.join(folder, "task.pkl"), "rb") as task_file:
                cwd, function, args, kwargs = pickle.load(task_file)
            os.chdir(cwd)
        except BaseException as exc:  # a module the task needs is missing here, say
            outcome = failed_outcome(exc, "The task could not be loaded here:\n")
        else:
            outcome = call_and_measure(function, args, kwargs)
        try:
            data = cloudpickle.dumps(outcome)
        except Exception as exc:
            outcome.result, outcome.error = None, f"{type(exc).__name__}: {exc}"
            outcome.traceback = "The task's result cannot be pickled:\n" + "".join(
                traceback.format_exception(exc)
            )
            data = cloudpickle.dumps(outcome)
        with open(os.path.join(folder, "outcome.tmp"), "wb") as outcome_file:
            outcome_file.write(data)
        os.rename(
            os.path.join(folder, "outcome.tmp"), os.path.join(folder, "outcome.pkl")
        )
    except BaseException:
        traceback.print_exc()
        status = 70  # the outcome could not be written
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        ctypes.CDLL(None).fflush(None)  # what C code printed with stdio, too
        os._exit(status)


# --8<-- [end:task-process]
