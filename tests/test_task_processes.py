"""Each task runs in a process of its own: what it does there touches only itself.

Both executors, called by hand (no server): exits, crashes, signals, threads and
subprocesses left behind, output, tracebacks, records that cannot be written,
cancellation, and a launcher that dies. tests/test_server.py checks the same on
a real server.
"""

import asyncio
import ctypes
import inspect
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from covalent._shared_files.exceptions import TaskCancelledError, TaskRuntimeError
from covalent._shared_files.logger import app_log

from tests.forking import forking_meanwhile
from tests.waiting import wait_until
from timing_executor.async_timing import AsyncTimingExecutor
from timing_executor.server_side.launchers import LocalLauncher, cancel_task, task_launcher
from timing_executor.server_side.records import TaskRecord
from timing_executor.server_side.task_runs import TaskRun
from timing_executor.task_side.launcher import task_folder
from timing_executor.timing import TimingExecutor

EXECUTORS = {"timing": TimingExecutor, "async_timing": AsyncTimingExecutor}


def run(executor, function, *args, node_id: int = 0):
    """Call ``executor.run`` as Covalent would, awaiting it for the async executor."""
    outcome = executor.run(function, list(args), {}, {"dispatch_id": "d", "node_id": node_id})
    return asyncio.run(outcome) if inspect.iscoroutine(outcome) else outcome


def records(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.fixture(params=EXECUTORS)
def executor(request, tmp_path):
    """Each executor, writing JSON Lines records to a file of the test's own."""
    return EXECUTORS[request.param](tmp_path / "records.jsonl", record_format="jsonl")


def exits():
    sys.exit(3)


def exits_hard():
    print("written before os._exit", flush=False)
    os._exit(4)


def segfaults():
    ctypes.string_at(0)


def is_killed():
    os.kill(os.getpid(), signal.SIGKILL)


def leaves_a_thread():
    threading.Thread(target=time.sleep, args=(60,)).start()  # not a daemon
    return "returned"


def leaves_a_subprocess():
    return subprocess.Popen(["sleep", "60"]).pid


def writes_everywhere(tag: str) -> str:
    print(f"{tag}: print")
    print(f"{tag}: print to stderr", file=sys.stderr)
    os.write(1, f"{tag}: file descriptor 1\n".encode())
    ctypes.CDLL(None).puts(f"{tag}: C puts".encode())
    subprocess.run(["echo", f"{tag}: subprocess"], check=True)
    return tag


def test_the_task_runs_in_another_process_in_the_callers_folder(executor, tmp_path):
    os.chdir(tmp_path)
    pid, cwd = run(executor, lambda: (os.getpid(), os.getcwd()))
    assert pid != os.getpid() and cwd == str(tmp_path)


@pytest.mark.parametrize(
    ("task", "error", "text"),
    [
        (exits, "SystemExit: 3", "SystemExit"),
        (exits_hard, "exit code 4: the task's process exited", "exit code 4"),
        (segfaults, "SIGSEGV: the task's process was killed by signal 11", "SIGSEGV"),
        (is_killed, "SIGKILL: the task's process was killed by signal 9", "SIGKILL"),
    ],
)
def test_exits_and_crashes_fail_the_task_only_and_are_recorded(executor, task, error, text):
    with pytest.raises(TaskRuntimeError, match=re.escape(error)):
        run(executor, task)
    assert run(executor, lambda: "the next task runs") == "the next task runs"
    failed, completed = records(executor.timing_filepath)
    assert failed["status"] == "FAILED" and failed["error"].startswith(error)
    assert completed["status"] == "COMPLETED"
    line = TaskRecord(**failed).to_line("text")
    assert f"failed ({text}) after" in line


def test_sys_exit_shows_where_it_was_called(executor):
    with pytest.raises(TaskRuntimeError) as raised:
        run(executor, exits)
    report = str(raised.value)
    assert report.startswith("Traceback (most recent call last):")
    assert "in exits\n    sys.exit(3)" in report and report.endswith("SystemExit: 3\n")


def test_threads_left_running_do_not_hold_the_task(executor):
    started = time.monotonic()
    assert run(executor, leaves_a_thread) == "returned"
    assert time.monotonic() - started < 30


def test_subprocesses_left_running_end_with_the_task(executor):
    pid = run(executor, leaves_a_subprocess)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        if status == "Z":  # killed, waiting for its new parent to reap it
            break
        time.sleep(0.05)
    else:
        assert not Path(f"/proc/{pid}").exists()


def start_escaping_process(how: str) -> int:
    """Start a ``sleep 60`` that leaves the task's process group; return its pid."""
    if how == "new session":
        return subprocess.Popen(["sleep", "60"], start_new_session=True).pid
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # a daemon, the classic way: fork, setsid, fork again
        os.setsid()
        if (pid := os.fork()) == 0:
            os.execvp("sleep", ["sleep", "60"])
        os.write(write_end, str(pid).encode())
        os._exit(0)
    os.wait()
    return int(os.read(read_end, 32))


def is_gone(pid: int, seconds: float = 5) -> bool:
    """Whether process ``pid`` ends (or is a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("how", ["new session", "daemon"])
@pytest.mark.parametrize("ending", ["completes", "fails"])
def test_nothing_a_task_started_outlives_it(executor, tmp_path, how, ending):
    marker = tmp_path / "pid"

    def escapes():
        marker.write_text(str(start_escaping_process(how)))
        if ending == "fails":
            os._exit(5)

    if ending == "fails":
        with pytest.raises(TaskRuntimeError, match="exit code 5"):
            run(executor, escapes)
    else:
        run(executor, escapes)
    assert is_gone(int(marker.read_text()))


def test_the_cpu_time_of_processes_a_task_left_is_counted(executor):
    """A process in a new session burns 0.5 s of CPU; the task never waits for it."""
    burn = (
        "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.5: pass"
    )

    def leaves_a_busy_process():
        busy = subprocess.Popen([sys.executable, "-c", burn], start_new_session=True)
        while Path(f"/proc/{busy.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.05)  # it has ended; the task does not reap it

    run(executor, leaves_a_busy_process)
    (record,) = records(executor.timing_filepath)
    assert record["cpu_seconds"] >= 0.5


def test_output_of_every_kind_goes_to_the_tasks_streams_unmixed(tmp_path):
    """Python, file descriptor, C and subprocess output; 8 concurrent tasks."""
    executors = [TimingExecutor(tmp_path / "r.log") for _ in range(8)]
    for executor in executors:  # as Covalent's BaseExecutor.execute does
        executor._task_stdout, executor._task_stderr = io.StringIO(), io.StringIO()
    threads = [
        threading.Thread(target=run, args=(executor, writes_everywhere, f"task {n}"))
        for n, executor in enumerate(executors)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, executor in enumerate(executors):
        stdout = executor.task_stdout.getvalue().splitlines()
        assert sorted(stdout) == sorted(
            f"task {n}: {kind}" for kind in ("print", "file descriptor 1", "C puts", "subprocess")
        )
        assert executor.task_stderr.getvalue() == f"task {n}: print to stderr\n"


def test_output_written_before_the_process_dies_is_kept(tmp_path):
    executor = TimingExecutor(tmp_path)
    executor._task_stdout, executor._task_stderr = io.StringIO(), io.StringIO()
    with pytest.raises(TaskRuntimeError):
        run(executor, exits_hard)
    assert executor.task_stdout.getvalue() == "written before os._exit\n"
    assert "exit code 4" in executor.task_stderr.getvalue()


def check(value):
    raise ValueError(f"bad value {value}")


def test_a_raising_task_reports_type_message_and_traceback(executor):
    executor._task_stderr = io.StringIO()
    with pytest.raises(TaskRuntimeError) as raised:
        run(executor, check, 7)
    report = str(raised.value)
    assert report.startswith("Traceback (most recent call last):")
    assert f'{__file__}", line' in report and 'raise ValueError(f"bad value {value}")' in report
    assert report.endswith("ValueError: bad value 7\n")
    assert executor.task_stderr.getvalue() == report
    (record,) = records(executor.timing_filepath)
    assert (record["status"], record["error"]) == ("FAILED", "ValueError: bad value 7")


def test_a_result_that_cannot_be_pickled_fails_with_that_reason(executor):
    with pytest.raises(TaskRuntimeError, match="result cannot be pickled"):
        run(executor, threading.Lock)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_a_record_that_cannot_be_written_costs_no_result(kind):
    """The record and the reason, naming the file, go to the task's stderr and the log."""
    executor = EXECUTORS[kind]("/dev/full")
    executor._task_stderr = io.StringIO()
    warnings = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())
    app_log.addHandler(handler)
    try:
        assert run(executor, lambda: 6 * 7) == 42
    finally:
        app_log.removeHandler(handler)
    stderr = executor.task_stderr.getvalue()
    assert "could not append this task's record to /dev/full: No space left on device" in stderr
    assert re.search(r"Node 0 in dispatch d took \d+\.\d{6}s of CPU time\.\n$", stderr)
    assert warnings == [stderr]


def running_task_id(launcher) -> str:
    """Wait until the launcher runs exactly one task; return its id."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with launcher.lock:
            started = [task_id for task_id, state in launcher.tasks.items() if state.started]
        if started:
            return started[0]
        time.sleep(0.01)
    raise TimeoutError("no task started")


def test_cancel_kills_the_task_and_records_it(executor, tmp_path):
    marker = tmp_path / "pid"

    def sleeps():
        marker.write_text(f"{os.getpid()} {start_escaping_process('daemon')}")
        time.sleep(60)

    outcome = {}

    def call():
        try:
            run(executor, sleeps)
        except TaskCancelledError as error:
            outcome["cancelled"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    task_id = running_task_id(task_launcher())
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    cancel = executor.cancel({"dispatch_id": "d", "node_id": 0}, task_id)
    if inspect.iscoroutine(cancel):
        cancel = asyncio.run(cancel)
    cancelled_at = time.monotonic()
    assert cancel is True
    thread.join(timeout=10)
    assert time.monotonic() - cancelled_at < 2
    assert "cancelled" in outcome
    task_pid, daemon_pid = map(int, marker.read_text().split())
    assert not Path(f"/proc/{task_pid}").exists() and is_gone(daemon_pid)
    (record,) = records(executor.timing_filepath)
    assert record["status"] == "CANCELLED" and record["wall_seconds"] < 30
    assert "was cancelled after" in TaskRecord(**record).to_line("text")


@pytest.mark.parametrize("handle", ["no-such-task", 42, None])
def test_cancel_of_an_unknown_job_handle_says_false(handle):
    assert cancel_task(handle) is False


def test_a_task_cancelled_before_it_starts_never_runs(tmp_path):
    launcher = task_launcher()
    task = TaskRun()
    assert launcher.cancel(task.task_id) is True
    marker = tmp_path / "ran"
    assert task.start(marker.touch, [], {}) is False
    task.discard()
    time.sleep(0.5)
    assert not marker.exists()
    assert not Path(task_folder(launcher.folder, task.task_id)).exists()


def test_a_dead_launcher_fails_its_tasks_and_a_new_one_takes_over(executor, tmp_path):
    launcher = task_launcher()
    outcome = {}

    def call():
        try:
            run(executor, time.sleep, 60)
        except TaskRuntimeError as error:
            outcome["error"] = str(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    running_task_id(launcher)
    launcher.process.kill()
    thread.join(timeout=10)
    assert "the task launcher process died" in outcome["error"]
    assert run(executor, lambda: "served") == "served"
    assert task_launcher() is not launcher


def test_processes_forked_meanwhile_do_not_hold_the_launchers_start():
    """A process forked from this one while the launcher starts (as Covalent's
    ``local`` forks its pool workers) keeps a copy of what this one holds open;
    ``subprocess.Popen`` waited on a pipe that such a copy held open."""
    with ThreadPoolExecutor(1) as pool, forking_meanwhile():
        launchers = [pool.submit(LocalLauncher).result(timeout=20) for _ in range(10)]
    for launcher in launchers:
        launcher.process.kill()

    def exit_codes() -> set:
        return {launcher.process.poll() for launcher in launchers}

    wait_until(lambda: None not in exit_codes(), limit=10)  # reaped
    assert exit_codes() == {-signal.SIGKILL}


def test_no_task_folder_is_left_behind(executor):
    run(executor, lambda: None)
    with pytest.raises(TaskRuntimeError):
        run(executor, exits_hard)
    assert list(Path(task_launcher().folder).iterdir()) == []


def test_the_tasks_folder_goes_with_the_launcher(tmp_path):
    """Whichever of the launcher and its executor's process ends first, no folder stays."""
    script = (
        "from timing_executor.server_side.launchers import task_launcher\n"
        "from timing_executor.timing import TimingExecutor\n"
        f"TimingExecutor({str(tmp_path)!r}).run(print, [], {{}}, "
        "{'dispatch_id': 'd', 'node_id': 0})\n"
        "print(task_launcher().folder)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    folder = Path(done.stdout.splitlines()[-1])
    deadline = time.monotonic() + 10
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert folder.parent == Path(tempfile.gettempdir()) and not folder.exists()


def test_receive_reports_cancelled_the_tasks_covalent_refused_to_start(executor):
    """Covalent calls receive(metadata, None) for tasks of a cancelled dispatch."""
    metadata = {"dispatch_id": "d", "node_ids": [3, 5], "task_group_id": 3}
    updates = asyncio.run(executor.receive(metadata, None))
    assert [(u.dispatch_id, u.node_id, str(u.status)) for u in updates] == [
        ("d", 3, "CANCELLED"),
        ("d", 5, "CANCELLED"),
    ]
    with pytest.raises(NotImplementedError):
        asyncio.run(executor.receive(metadata, {"status": "COMPLETED"}))


def test_a_cancel_right_after_the_start_is_never_lost():
    """On a busy machine a cancel can reach a task's supervisor while it forks the
    task (a signal handler's exception raised there was swallowed): 60 tasks,
    cancelled 0 to 5 ms after their start, none of them runs to its end."""
    burn = [sys.executable, "-c", "while True: pass"]
    hogs = [subprocess.Popen(burn) for _ in range(os.cpu_count() or 1)]
    try:
        launcher = task_launcher()
        runs = []
        for index in range(60):
            run = TaskRun()
            run.start(time.sleep, [30], {})
            time.sleep(index % 6 / 1000)
            launcher.cancel(run.task_id)
            runs.append(run)
        ended = [run.exited.result(timeout=60) for run in runs]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert [exit for exit in ended if "outcome.pkl" in exit.files] == []
