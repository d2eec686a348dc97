"""A Covalent executor plugin that runs each task in a process of its own and
records how much CPU time the task used.

``TimingExecutor`` never calls a task in the Covalent server's process. A small
*launcher* process, started once and with Covalent already imported, forks one
process per task. Whatever the task does there (return, raise, ``sys.exit()``,
``os._exit()``, crash, print), only its own node is affected. The task measures
its CPU time where it runs; the executor, back in the server, appends the record,
by default the sentence::

    Node 1 in dispatch 5b8e0c0e-... took 0.000012s of CPU time.
"""

# --8<-- [start:imports]
import contextlib
import ctypes
import functools
import inspect
import io
import json
import os
import pickle
import resource
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import cloudpickle
from covalent._shared_files.exceptions import TaskCancelledError, TaskRuntimeError
from covalent._shared_files.logger import app_log
from covalent._shared_files.util_classes import RESULT_STATUS
from covalent.executor.base import BaseExecutor
from covalent.executor.schemas import TaskUpdate

# --8<-- [end:imports]


# --8<-- [start:records]
#: Where records go unless ``timing_filepath`` says otherwise:
#: ``~/.cache/covalent/timing.log`` of the server's user, or
#: ``$XDG_CACHE_HOME/covalent/timing.log`` when that variable is set.
#:
#: :meta hide-value:
DEFAULT_TIMING_FILEPATH = str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "covalent"
    / "timing.log"
)

RECORD_FORMATS = ("text", "jsonl")


def resolve_timing_filepath(timing_filepath: str | os.PathLike) -> str:
    """Return the absolute path records go to, after checking it can be written.

    An existing directory means the file ``timing.log`` inside it.
    """
    if not str(timing_filepath):
        raise ValueError(
            "timing_filepath '' is empty: pass a file or directory path."
        )
    path = Path(timing_filepath).expanduser().resolve()
    if path.is_dir():
        path = path / "timing.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    except OSError as error:
        raise ValueError(
            f"timing_filepath {str(timing_filepath)!r} cannot be written: "
            f"{error.strerror} ({path}). "
            "Pass a file, or a directory, that you can write to."
        ) from error
    return str(path)


def check_record_format(record_format: str) -> str:
    """Return ``record_format`` if it is one of :data:`RECORD_FORMATS`."""
    if record_format not in RECORD_FORMATS:
        raise ValueError(
            f"record_format {record_format!r} is not supported: "
            f"use one of {RECORD_FORMATS}."
        )
    return record_format


def task_ids(task_metadata: dict) -> tuple[str, int]:
    """Return the dispatch and node ids that Covalent puts in ``task_metadata``."""
    missing = [k for k in ("dispatch_id", "node_id") if k not in task_metadata]
    if missing:
        raise ValueError(
            f"task_metadata has no {' or '.join(map(repr, missing))} "
            f"(its keys: {sorted(task_metadata)}). Covalent passes both; when "
            "calling run() yourself, pass them too, e.g. "
            "{'dispatch_id': 'test', 'node_id': 0}."
        )
    return task_metadata["dispatch_id"], task_metadata["node_id"]


def task_name(function: Callable) -> str:
    """Return the electron's name.

    Covalent hands executors ``functools.partial(wrapper_fn, serialized_function,
    ...)``; the serialized function keeps the original name in ``attrs``.
    """
    wrapped = getattr(function, "args", None) or [None]
    attrs = getattr(wrapped[0], "attrs", None)
    if isinstance(attrs, dict) and "name" in attrs:
        return attrs["name"]
    return getattr(function, "__name__", type(function).__name__)


@dataclass(frozen=True)
class TaskRecord:
    """What one task's record holds."""

    dispatch_id: str
    node_id: int
    node_name: str
    started_at: float  #: Unix time the task started.
    cpu_seconds: float
    wall_seconds: float
    status: str = "COMPLETED"  #: Or ``"FAILED"`` or ``"CANCELLED"``.
    #: Why it failed, such as ``"ValueError: message"`` or ``"exit code 4: ..."``.
    error: str | None = None

    def to_line(self, record_format: str = "text") -> str:
        """Return the record as one line, newline included."""
        if record_format == "jsonl":
            return json.dumps(asdict(self)) + "\n"
        who = f"Node {self.node_id} in dispatch {self.dispatch_id}"
        cpu = f"{self.cpu_seconds:.6f}s of CPU time"
        if self.status == "CANCELLED":
            return f"{who} was cancelled after {cpu}.\n"
        if self.status == "FAILED":
            reason = (self.error or "unknown").split(":", 1)[0]
            return f"{who} failed ({reason}) after {cpu}.\n"
        return f"{who} took {cpu}.\n"


def append_line(path: str, line: str) -> None:
    """Append ``line`` in one ``write``, so concurrent writers never interleave."""
    data = line.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(f"only {written} of {len(data)} bytes reached {path}")


def append_record(path: str, line: str, stderr: io.TextIOBase | None) -> None:
    """Append a record; if that fails, put it and the reason in the task's stderr.

    A record that cannot be written never costs the task its result.
    """
    try:
        append_line(path, line)
    except OSError as error:
        message = (
            f"timing-executor could not append this task's record to {path}: "
            f"{error.strerror or error}. The record:\n{line}"
        )
        print(message, end="", file=stderr or sys.stderr)
        app_log.warning(message)


# --8<-- [end:records]


# --8<-- [start:task-process]
@dataclass
class TaskOutcome:
    """What a task's process reports when the task returns or raises."""

    started_at: float
    cpu_seconds: float
    wall_seconds: float
    result: Any = None
    error: str | None = None  #: ``"ValueError: message"`` when the task raised.
    traceback: str | None = None


def process_cpu_seconds() -> float:
    """CPU time of this process and of the subprocesses it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Stopwatch:
    """Measures the calls of the functions it wraps: CPU time and wall time.

    ``cpu_clock`` reads the CPU time to count: by default this process's.
    """

    def __init__(
        self, cpu_clock: Callable[[], float] = process_cpu_seconds
    ) -> None:
        self.cpu_clock = cpu_clock
        self.started_at = time.time()
        self.cpu_seconds = self.wall_seconds = 0.0

    def wrap(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.started_at = time.time()
            cpu_start, wall_start = self.cpu_clock(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu_seconds += self.cpu_clock() - cpu_start
                self.wall_seconds += time.perf_counter() - wall_start

        return timed


class TimedSerializedFunction:
    """Stands in for the user's serialized function inside Covalent's wrapper.

    The wrapper asks it for the function (``get_deserialized()``) and gets it
    wrapped by the stopwatch, so the record holds the time of the user's own
    function, not of Covalent unpacking its inputs and packing its result.
    """

    def __init__(self, serialized: Any, stopwatch: Stopwatch) -> None:
        self.serialized, self.stopwatch = serialized, stopwatch

    def get_deserialized(self) -> Callable:
        return self.stopwatch.wrap(self.serialized.get_deserialized())


def timed_task(function: Callable, stopwatch: Stopwatch) -> Callable:
    """Time the user's own function, inside Covalent's wrapper when there is one.

    Covalent hands executors ``partial(wrapper_fn, serialized_function, ...)``;
    any other callable (``run()`` called by hand) is timed as a whole.
    """
    wrapped = (
        function.args[0]
        if isinstance(function, partial) and function.args
        else None
    )
    if not hasattr(wrapped, "get_deserialized"):
        return stopwatch.wrap(function)
    timed = TimedSerializedFunction(wrapped, stopwatch)
    return partial(function.func, timed, *function.args[1:], **function.keywords)


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


# --8<-- [end:task-process]


# --8<-- [start:launcher]
def encode_message(header: dict, blobs: dict[str, bytes] | None = None) -> bytes:
    """One message between an executor and a launcher: the length of the header
    (8 bytes), the header as JSON, then the bytes of each blob the header names."""
    blobs = blobs or {}
    sizes = {name: len(data) for name, data in blobs.items()}
    head = json.dumps({**header, "blobs": sizes}).encode()
    return b"".join([len(head).to_bytes(8, "big"), head, *blobs.values()])


class MessageReader:
    """Cuts a stream of bytes back into messages: ``(header, blobs)`` pairs."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict, dict[str, bytes]]]:
        """Take the next bytes of the stream; return the messages they complete."""
        self.buffer += data
        messages = []
        while len(self.buffer) >= 8:
            head_end = 8 + int.from_bytes(self.buffer[:8], "big")
            if len(self.buffer) < head_end:
                break
            header = json.loads(self.buffer[8:head_end])
            sizes = header.pop("blobs")
            if len(self.buffer) < head_end + sum(sizes.values()):
                break
            blobs, offset = {}, head_end
            for name, size in sizes.items():
                blobs[name] = bytes(self.buffer[offset : offset + size])
                offset += size
            del self.buffer[:offset]
            messages.append((header, blobs))
        return messages


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the file descriptor ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve_tasks(
    workdir: str,
    sys_path: list[str] | None = None,
    own_workdir: bool = False,
    silence_limit: float | None = None,
) -> None:
    """The launcher: run each task it is sent under a supervisor, say how it ended.

    It reads messages on file descriptor 0: ``{"start": id}`` with the pickled
    task, and ``{"cancel": id}``; it ignores others. Each task gets a folder in
    ``workdir`` and a supervisor process (:func:`supervise_task`); when that ends,
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


#: The exit status of :data:`LAUNCHER_BOOT` when versions differ, and what it says
#: on stderr before it exits, followed by the versions it found.
VERSIONS_DIFFER, VERSIONS_SAID = 97, "timing-executor versions: "

#: The exit status of a launcher that heard nothing for its ``silence_limit``.
LAUNCHER_UNHEARD = 98

#: Starts a launcher (or, given a file, one supervised task) in a new Python. It
#: first checks that this Python, Covalent and cloudpickle are the versions the
#: executor expects (``argv[1]``), then unpickles what to run: from the first
#: message on file descriptor 0, or from the file ``argv[2]``. Plain source, so a
#: Python of another version still runs it and says what differs.
LAUNCHER_BOOT = """
import json, os, sys
expected = json.loads(sys.argv[1])
found = {"python": "%d.%d" % sys.version_info[:2]}
if found["python"] == expected["python"]:
    from importlib import metadata
    for name in expected:
        if name != "python":
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = "not installed"
if found != expected:
    sys.stderr.write("{said}" + json.dumps(found) + "\\n")
    sys.exit({status})
import pickle
if sys.argv[2:]:
    with open(sys.argv[2], "rb") as job:
        job = pickle.load(job)
else:
    def read(size):
        data = b""
        while len(data) < size:
            more = os.read(0, size - len(data))
            if not more:
                sys.exit(0)
            data += more
        return data
    job = pickle.loads(read(int.from_bytes(read(8), "big")))
job()
""".replace("{said}", VERSIONS_SAID).replace("{status}", str(VERSIONS_DIFFER))


def runtime_versions() -> dict[str, str]:
    """What the far side of a task must run: this Python's minor version, and
    this Covalent's and cloudpickle's versions (pickles of code need them)."""
    from importlib import metadata

    return {
        "python": "{}.{}".format(*sys.version_info[:2]),
        "covalent": metadata.version("covalent"),
        "cloudpickle": metadata.version("cloudpickle"),
    }


def boot_message(job: Callable[[], Any]) -> bytes:
    """The first message to a launcher: ``job`` (what it runs), pickled by value."""
    data = cloudpickle.dumps(job)
    return len(data).to_bytes(8, "big") + data


# --8<-- [end:launcher]


# --8<-- [start:executor-side]
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


def report_end(
    end: TaskEnd,
    task_metadata: dict,
    node_name: str,
    executor,
    record_type: type[TaskRecord] = TaskRecord,
    **details: Any,
) -> Any:
    """Record the task and pass its output on; return its result or raise.

    ``executor`` gives the record's file and format and the task's streams;
    ``details`` fill the other fields of a ``record_type`` (where the task ran).
    Raises Covalent's ``TaskRuntimeError`` (the node FAILS, with the traceback in
    its stderr) or ``TaskCancelledError`` (the node is CANCELLED).
    """
    dispatch_id, node_id = task_ids(task_metadata)
    task_stderr = executor.task_stderr  # None when run() is called by hand
    print(end.stdout, end="", file=executor.task_stdout or sys.stdout)
    print(end.stderr, end="", file=task_stderr or sys.stderr)
    record = record_type(
        dispatch_id=dispatch_id,
        node_id=node_id,
        node_name=node_name,
        started_at=end.started_at,
        cpu_seconds=end.cpu_seconds,
        wall_seconds=end.wall_seconds,
        status=end.status,
        error=end.error,
        **details,
    )
    line = record.to_line(executor.record_format)
    append_record(executor.timing_filepath, line, task_stderr)
    if end.status == "CANCELLED":
        raise TaskCancelledError(end.report)
    if end.status == "FAILED":
        if task_stderr is not None:
            print(end.report, end="", file=task_stderr)
        raise TaskRuntimeError(end.report)
    return end.result


def refused_tasks(task_group_metadata: dict, data: Any) -> list[TaskUpdate]:
    """Report CANCELLED the tasks Covalent refused to start.

    When a dispatch is cancelled before some of its tasks start, Covalent 0.240.0
    skips ``run()`` for them and calls the executor's ``receive(..., None)``
    instead; without an answer there, those nodes would end FAILED.
    """
    if data is not None:
        raise NotImplementedError("this executor does not use send/poll/receive")
    return [
        TaskUpdate(
            dispatch_id=task_group_metadata["dispatch_id"],
            node_id=node_id,
            status=RESULT_STATUS.CANCELLED,
            assets={},
        )
        for node_id in task_group_metadata["node_ids"]
    ]


def empty_means_default(defaults: dict[str, Any]) -> Callable[[type], type]:
    """A class decorator: an argument given as ``""`` gets its value from
    ``defaults`` (the plugin's ``_EXECUTOR_PLUGIN_DEFAULTS``) instead.

    In ``covalent.conf``, a key set to ``""`` means "the default" to Covalent, but
    Covalent writes the default back only when a process imports ``covalent``; until
    then a running server passes ``""`` to ``__init__`` for every task.
    """

    def decorate(cls: type) -> type:
        init = cls.__init__
        signature = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            given = signature.bind(self, *args, **kwargs)
            for name, value in given.arguments.items():
                if isinstance(value, str) and not value and name in defaults:
                    given.arguments[name] = defaults[name]
            init(*given.args, **given.kwargs)

        cls.__init__ = __init__
        return cls

    return decorate


# --8<-- [end:executor-side]


# --8<-- [start:plugin-attributes]
executor_plugin_name = "TimingExecutor"

#: The values the Covalent server builds the executor from (see ``covalent.conf``):
#: ``timing_filepath`` :data:`DEFAULT_TIMING_FILEPATH`, ``record_format`` "text".
#:
#: :meta hide-value:
_EXECUTOR_PLUGIN_DEFAULTS = {
    "timing_filepath": DEFAULT_TIMING_FILEPATH,
    "record_format": "text",
}


# --8<-- [end:plugin-attributes]


# --8<-- [start:executor]
@empty_means_default(_EXECUTOR_PLUGIN_DEFAULTS)
class TimingExecutor(BaseExecutor):
    """Run each task in a process of its own and record its CPU time.

    Args:
        timing_filepath: File the records are appended to; an existing
            directory means ``timing.log`` inside it. Defaults to
            :data:`DEFAULT_TIMING_FILEPATH`.
        record_format: ``"text"`` for one sentence per task, ``"jsonl"`` for one
            JSON object per task (with wall time, status and node name).
        **kwargs: Options of :class:`covalent.executor.base.BaseExecutor`, such
            as ``log_stdout``.

    Raises:
        ValueError: If ``timing_filepath`` cannot be written or
            ``record_format`` is unknown.
    """

    def __init__(
        self,
        timing_filepath: str | os.PathLike = DEFAULT_TIMING_FILEPATH,
        record_format: str = "text",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.timing_filepath = resolve_timing_filepath(timing_filepath)
        self.record_format = check_record_format(record_format)

    def run(
        self, function: Callable, args: list, kwargs: dict, task_metadata: dict
    ) -> Any:
        """Run the task in its own process; record it; return its result."""
        task_ids(task_metadata)  # bad metadata fails before anything starts
        task = TaskRun()
        try:
            if hasattr(self, "_send_queue"):  # run by Covalent, not called by hand
                self.set_job_handle(task.task_id)  # what cancel() gets back
                if self.get_cancel_requested():  # asked before the handle was saved
                    task.launcher.cancel(task.task_id)
            if not task.start(function, args, kwargs):  # a cancel came first
                raise TaskCancelledError(
                    "The task was cancelled before it started."
                )
            task.exited.result()  # wait, in this thread, until the process ends
            end = task.end()
        finally:
            task.discard()  # if anything went wrong: no task or folder is left
        return report_end(end, task_metadata, task_name(function), self)

    def cancel(self, task_metadata: dict, job_handle: Any) -> bool:
        """Stop the task and every process it started; ``run()`` then raises
        ``TaskCancelledError``, which makes the node CANCELLED."""
        return cancel_task(job_handle)

    async def receive(
        self, task_group_metadata: dict, data: Any
    ) -> list[TaskUpdate]:
        """Report CANCELLED the tasks Covalent refused to start."""
        return refused_tasks(task_group_metadata, data)


# --8<-- [end:executor]
