"""The launcher: a loop that runs each task it is sent under a supervisor, in a
folder of its own, and says how the task ended."""

# --8<-- [start:launcher]
import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import sys
import time

from timing_executor.task_side.messages import (
    MessageReader,
    encode_message,
    write_all,
)
from timing_executor.task_side.supervisor import (
    PR_SET_PDEATHSIG,
    kill_group,
    supervise_task,
)

#: The exit status of a launcher that heard nothing for its ``silence_limit``.
LAUNCHER_UNHEARD = 98


def serve_tasks(
    workdir: str,
    sys_path: list[str] | None = None,
    own_workdir: bool = False,
    silence_limit: float | None = None,
) -> None:
    """The launcher: run each task it is sent under a supervisor, say how it ended.

    It reads messages on file descriptor 0: ``{"start": id}`` with the pickled
    task, and ``{"cancel": id}``; it ignores others. Each task gets a folder in
    ``workdir`` and a supervisor process
    (:func:`~timing_executor.task_side.supervisor.supervise_task`); when that ends,
    the launcher writes ``{"ended": id, ...}`` with the task's outcome and output
    to file descriptor 1 and removes the folder. When 0 closes (the executor's
    process or its connection is gone), it stops its tasks and ends; ``own_workdir``
    means the folder is its own, to remove as well. With ``silence_limit``, it does
    the same when nothing came on 0 for that many seconds, then exits with status
    :data:`LAUNCHER_UNHEARD`: an executor that sends a message every few seconds
    (a heartbeat) is then gone without a word, or its connection died silently.
    """
    if sys_path is not None:
        sys.path[:] = sys_path
    workdir = os.path.abspath(workdir)
    import gc

    import covalent  # noqa: F401  (loaded once here, so each fork is quick)

    gc.freeze()  # forked tasks then share these objects' memory instead of copying
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the executor
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() via the pipe
    supervisors: dict[str, int] = {}  # task id -> pid, while the task runs
    reader = MessageReader()
    heard_at, unheard = time.monotonic(), False
    try:
        while True:
            wait = None
            if silence_limit is not None:
                wait = max(0.0, heard_at + silence_limit - time.monotonic())
            readable, _, _ = select.select([0, wake_read], [], [], wait)
            if not readable and wait == 0.0:  # nothing came, nothing is waiting
                unheard = True
                break
            if wake_read in readable:
                os.read(wake_read, 4096)
            for task_id, status in reap_supervisors(supervisors):
                folder = task_folder(workdir, task_id)
                message = ended_message(task_id, folder, status)
                shutil.rmtree(folder, ignore_errors=True)
                write_all(1, message)
            if 0 in readable:
                data = os.read(0, 1 << 20)
                if not data:
                    break
                heard_at = time.monotonic()
                for header, blobs in reader.feed(data):
                    if "start" in header:
                        folder = task_folder(workdir, header["start"])
                        os.makedirs(folder)
                        with open(os.path.join(folder, "task.pkl"), "wb") as task:
                            task.write(blobs["task"])
                        supervisors[header["start"]] = fork_supervisor(
                            folder, [wake_read, wake_write]
                        )
                    elif header.get("cancel") in supervisors:
                        os.kill(supervisors[header["cancel"]], signal.SIGTERM)
    except BrokenPipeError:
        pass  # nobody reads the answers any more
    finally:
        for task_id, pid in supervisors.items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
            shutil.rmtree(task_folder(workdir, task_id), ignore_errors=True)
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if unheard:
        sys.exit(LAUNCHER_UNHEARD)


def task_folder(workdir: str, task_id: str) -> str:
    return os.path.join(workdir, f"timing-task-{task_id}")


def fork_supervisor(folder: str, launcher_fds: list[int]) -> int:
    """Fork the supervisor of one task, in a process group of its own. SIGTERM is
    blocked in it from the start: a cancel that comes at once is never lost."""
    launcher_pid = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pid = os.fork()
    if pid == 0:  # the supervisor: it must never return to the loop
        try:
            if sys.platform == "linux":  # a SIGTERM if the launcher dies
                ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() == launcher_pid:  # else it died before prctl
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for fd in launcher_fds:
                    os.close(fd)
                os.setpgid(0, 0)
                supervise_task(folder)
        finally:
            os._exit(70)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    with contextlib.suppress(OSError):  # the child did it first, or has exited
        os.setpgid(pid, pid)  # also here, so a cancel can never miss the group
    return pid


def reap_supervisors(supervisors: dict[str, int]) -> list[tuple[str, int]]:
    """Collect the supervisors that ended: ``(task id, wait status)``."""
    ended = []
    for task_id, pid in list(supervisors.items()):
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            kill_group(pid)  # what is left in its group (no subreaper off Linux)
            del supervisors[task_id]
            ended.append((task_id, status))
    return ended


def ended_message(task_id: str, folder: str, status: int) -> bytes:
    """How the task of ``folder`` ended (``ended.json``, or how its supervisor died)
    and the files it left: its outcome, stdout and stderr."""
    try:
        with open(os.path.join(folder, "ended.json")) as ended_file:
            ended = json.load(ended_file)
    except (OSError, ValueError):
        exit_code = os.waitstatus_to_exitcode(status)
        ended = {"exit_code": exit_code, "cpu_seconds": 0.0}
    files = {}
    for name in ("outcome.pkl", "stdout", "stderr"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path, "rb") as file:
                files[name] = file.read()
    host = socket.gethostname()
    return encode_message({"ended": task_id, "host": host, **ended}, files)


# --8<-- [end:launcher]
