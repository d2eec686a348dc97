"""Records stay whole lines when threads and processes append to one file at once."""

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time

from tests.test_timing import TEXT_RECORD
from timing_executor.server_side.records import TaskRecord, append_line
from timing_executor.timing import TimingExecutor

RECORDS_PER_WRITER = 500


def _write_records(path: str, writer: int, records: int = RECORDS_PER_WRITER) -> None:
    """Append records the way the executor does, as fast as one writer can."""
    for node_id in range(records):
        record = TaskRecord(f"writer-{writer}", node_id, "f", time.time(), 0.001, 0.001)
        append_line(path, record.to_line())


def _run_tasks(path: str, writer: int, tasks: int) -> None:
    executor = TimingExecutor(path)
    for node_id in range(tasks):
        executor.run(int, [], {}, {"dispatch_id": f"writer-{writer}", "node_id": node_id})


def _assert_all_records_whole(path, writers, per_writer=RECORDS_PER_WRITER):
    with open(path) as records:
        text = records.read()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == writers * per_writer
    seen = {TEXT_RECORD.fullmatch(line).group(2, 1) for line in lines}
    assert len(seen) == len(lines)


def test_threads_never_interleave_or_drop_lines(tmp_path):
    path = str(tmp_path / "t.log")
    threads = [threading.Thread(target=_write_records, args=(path, w)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _assert_all_records_whole(path, 8)


def test_tasks_run_from_many_threads_each_leave_one_whole_record(tmp_path):
    path = str(tmp_path / "t.log")
    threads = [threading.Thread(target=_run_tasks, args=(path, w, 25)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _assert_all_records_whole(path, 8, per_writer=25)


def test_processes_never_interleave_or_drop_lines(tmp_path):
    path = str(tmp_path / "t.log")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_records, args=(path, w)) for w in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    _assert_all_records_whole(path, 4)


KILLED_WRITER = """
import sys
from timing_executor.server_side.records import TaskRecord, append_line
node_id = 0
while True:
    append_line(sys.argv[1], TaskRecord("killed", node_id, "f", 0, 0, 0).to_line())
    node_id += 1
"""


def test_a_killed_writer_leaves_only_whole_lines(tmp_path):
    path = tmp_path / "t.log"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)])
    deadline = time.monotonic() + 60
    while (not path.exists() or path.stat().st_size < 20_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    text = path.read_text()
    assert len(text) >= 20_000 and text.endswith("\n")
    node_ids = [int(TEXT_RECORD.fullmatch(line).group(1)) for line in text.splitlines()]
    assert node_ids == list(range(len(node_ids)))


def test_records_written_before_are_kept(tmp_path):
    path = tmp_path / "t.log"
    path.write_text("an earlier line\n")
    TimingExecutor(path).run(int, [], {}, {"dispatch_id": "d", "node_id": 0})
    first, second = path.read_text().splitlines()
    assert first == "an earlier line" and re.match("Node 0 in dispatch d took", second)
