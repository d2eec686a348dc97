"""The supervisor of one task: it forks the task's process, adopts every process
the task starts (a child subreaper, on Linux), and ends and reaps them all."""

# --8<-- [start:supervisor]
import contextlib
import ctypes
import json
import os
import signal
import sys
import traceback
from typing import Any, NoReturn

from timing_executor.task_side.task_process import redirect_output, run_task_process

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36  # from <linux/prctl.h>


#: The signals a supervisor waits for, SIGTERM (a cancel, or its launcher's end)
#: and SIGCHLD (a process of the task ended). It keeps them blocked and takes them
#: with ``sigwaitinfo``, so none is lost, whatever it is doing when one comes.
SUPERVISOR_SIGNALS = {signal.SIGTERM, signal.SIGCHLD}


def supervise_task(folder: str) -> NoReturn:
    """Run the task written to ``folder`` in a child process; end all it leaves.

    This process adopts every process the task starts, even one in a new session
    or a daemon (it is a *child subreaper*, on Linux), and reaps them as they end.
    When the task's process has ended, or at SIGTERM (a cancel), it kills and
    reaps all that is left, so nothing the task started outlives it, and writes
    ``ended.json``: the task process's exit code (negative: a signal; None: the
    task was stopped), its CPU time, and the CPU time of the other processes.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
    folder = os.path.abspath(folder)
    try:
        redirect_output(folder)  # the supervisor's own errors, too
        if sys.platform == "linux":
            ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
        pid = os.fork()
        if pid == 0:  # the task's process
            try:
                if sys.platform == "linux":  # the kernel kills it if we die
                    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)
                os.setpgid(0, 0)
                run_task_process(folder)
            finally:
                os._exit(70)
        ended, others = wait_for_task(pid)
        kill_group(pid)
        ended["others_cpu_seconds"] = others + end_descendants()
        with open(os.path.join(folder, "ended.json"), "w") as ended_file:
            json.dump(ended, ended_file)
    except BaseException:
        traceback.print_exc()  # into the task's stderr
    finally:
        os._exit(0)


def wait_for_task(pid: int) -> tuple[dict[str, Any], float]:
    """Reap the task's process ``pid`` and the orphans that end meanwhile, until it
    ends or SIGTERM comes; return how it ended and the orphans' CPU seconds."""
    others = 0.0
    while signal.sigwaitinfo(SUPERVISOR_SIGNALS).si_signo == signal.SIGCHLD:
        with contextlib.suppress(ChildProcessError):
            while (reaped := os.wait4(-1, os.WNOHANG))[0]:
                child, status, usage = reaped
                cpu = usage.ru_utime + usage.ru_stime
                if child == pid:
                    exit_code = os.waitstatus_to_exitcode(status)
                    return {"exit_code": exit_code, "cpu_seconds": cpu}, others
                others += cpu
    return {"exit_code": None, "cpu_seconds": 0.0}, others


def end_descendants() -> float:
    """Kill every process below this one and reap it; return their CPU seconds.

    As a subreaper this process adopts the children of each process it kills,
    so a few rounds reach them all.
    """
    cpu = 0.0
    while True:
        for pid in descendant_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            usage = os.wait4(-1, 0)[2]
        except ChildProcessError:
            return cpu
        cpu += usage.ru_utime + usage.ru_stime
        with contextlib.suppress(ChildProcessError):
            while (reaped := os.wait4(-1, os.WNOHANG))[0]:
                cpu += reaped[2].ru_utime + reaped[2].ru_stime


def descendant_pids() -> list[int]:
    """The processes below this one, from ``/proc`` (none where it is missing)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError), os.scandir("/proc") as entries:
        for entry in filter(lambda entry: entry.name.isdigit(), entries):
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    below = [os.getpid()]
    while below:
        kids = children.get(below.pop(), [])
        found.extend(kids)
        below.extend(kids)
    return found


def kill_group(pid: int) -> None:
    """Kill the process group ``pid`` leads, if any of it is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# --8<-- [end:supervisor]
