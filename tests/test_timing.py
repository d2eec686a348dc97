"""Unit tests of TimingExecutor.run() and its helpers, called directly (no server)."""

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from covalent._shared_files.exceptions import TaskRuntimeError

from timing_executor.timing import DEFAULT_TIMING_FILEPATH, TimingExecutor

TEXT_RECORD = re.compile(r"Node (\d+) in dispatch (\S+) took (\d+\.\d{6})s of CPU time\.")
METADATA = {"dispatch_id": "d-1", "node_id": 3}


def spin(seconds: float) -> float:
    """Burn CPU in this thread for about ``seconds``; return the CPU time it really used."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass
    return time.thread_time() - start


def test_run_returns_result_and_appends_the_sentence(tmp_path):
    log = tmp_path / "timing.log"
    executor = TimingExecutor(log)
    assert executor.run(lambda x, y: x + y, [1, 2], {}, METADATA) == 3
    assert executor.run(lambda x, y: x * y, [2], {"y": 3}, {**METADATA, "node_id": 4}) == 6
    lines = log.read_text().splitlines(keepends=True)
    assert len(lines) == 2 and all(line.endswith(".\n") for line in lines)
    assert [TEXT_RECORD.fullmatch(line.rstrip("\n")).group(1, 2) for line in lines] == [
        ("3", "d-1"),
        ("4", "d-1"),
    ]


def test_result_comes_back_from_the_tasks_process_as_the_task_returned_it(tmp_path):
    value = {"numbers": list(range(5)), "nested": ({"a"}, 2.5, None)}
    assert TimingExecutor(tmp_path).run(lambda: value, [], {}, METADATA) == value


def test_records_the_tasks_own_cpu_time(tmp_path):
    log = tmp_path / "t.log"
    true_cpu = TimingExecutor(log).run(spin, [0.2], {}, METADATA)
    recorded = float(TEXT_RECORD.fullmatch(log.read_text().strip()).group(3))
    assert recorded / true_cpu == pytest.approx(1.0, abs=0.03)


def test_concurrent_cpu_bound_tasks_each_get_their_own_time(tmp_path):
    """Tasks started from 4 threads at once: each record holds its task's time only."""
    log = tmp_path / "t.log"
    executor = TimingExecutor(log, record_format="jsonl")

    def task(node_id):
        return executor.run(spin, [0.3], {}, {"dispatch_id": "d", "node_id": node_id})

    with ThreadPoolExecutor(max_workers=4) as threads:
        futures = {n: threads.submit(task, n) for n in range(4)}
    truths = {n: future.result() for n, future in futures.items()}  # what a run() raised
    records = {r["node_id"]: r for r in map(json.loads, log.read_text().splitlines())}
    for node_id, truth in truths.items():
        assert records[node_id]["cpu_seconds"] / truth == pytest.approx(1.0, abs=0.03)
        assert records[node_id]["wall_seconds"] >= records[node_id]["cpu_seconds"] * 0.97


def test_directory_means_timing_log_inside_it(tmp_path):
    executor = TimingExecutor(tmp_path)
    assert executor.timing_filepath == str(tmp_path / "timing.log")
    executor.run(lambda: None, [], {}, METADATA)
    assert TEXT_RECORD.fullmatch((tmp_path / "timing.log").read_text().strip())


def test_original_pages_relative_directory_works(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert TimingExecutor(".").timing_filepath == str(tmp_path / "timing.log")


def test_missing_parent_folders_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "times.log"
    assert TimingExecutor(path).timing_filepath == str(path)
    assert path.exists()


def test_default_path_is_absolute_and_in_the_cache_folder():
    assert DEFAULT_TIMING_FILEPATH.startswith("/")
    assert DEFAULT_TIMING_FILEPATH.endswith("/.cache/covalent/timing.log")
    assert TimingExecutor().timing_filepath == DEFAULT_TIMING_FILEPATH


def test_unwritable_path_fails_at_construction_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=re.escape(str(blocker / "timing.log"))):
        TimingExecutor(blocker / "timing.log")


def test_an_unknown_record_format_fails_at_construction_naming_it(tmp_path):
    with pytest.raises(ValueError, match="'csv'"):
        TimingExecutor(tmp_path, record_format="csv")


def test_an_empty_path_means_the_default():  # as "" in covalent.conf
    assert TimingExecutor("").timing_filepath == DEFAULT_TIMING_FILEPATH


@pytest.mark.parametrize("missing", ["dispatch_id", "node_id"])
def test_metadata_without_ids_is_rejected_before_the_task_runs(tmp_path, missing):
    marker = tmp_path / "ran"
    metadata = {k: v for k, v in METADATA.items() if k != missing}
    with pytest.raises(ValueError, match=f"task_metadata has no '{missing}'"):
        TimingExecutor(tmp_path).run(marker.touch, [], {}, metadata)
    assert not marker.exists()


def test_failing_task_raises_its_own_error_and_is_recorded(tmp_path):
    log = tmp_path / "t.log"
    executor = TimingExecutor(log)
    executor.run(lambda: 1, [], {}, METADATA)

    def fail():
        raise ValueError("bad input: 7")

    with pytest.raises(TaskRuntimeError, match="ValueError: bad input: 7"):
        executor.run(fail, [], {}, {**METADATA, "node_id": 5})
    first, second = log.read_text().splitlines()
    assert TEXT_RECORD.fullmatch(first)
    assert re.fullmatch(
        r"Node 5 in dispatch d-1 failed \(ValueError\) after \d+\.\d{6}s of CPU time\.", second
    )


def test_jsonl_records_hold_what_a_comparison_needs(tmp_path):
    log = tmp_path / "t.jsonl"
    executor = TimingExecutor(log, record_format="jsonl")
    before = time.time()

    def add(x, y):
        return x + y

    executor.run(add, [1, 2], {}, METADATA)
    with pytest.raises(TaskRuntimeError, match="ZeroDivisionError"):
        executor.run(lambda: 1 / 0, [], {}, METADATA)
    ok, failed = map(json.loads, log.read_text().splitlines())
    assert ok["status"] == "COMPLETED" and ok["error"] is None
    assert ok["node_name"] == "add" and ok["dispatch_id"] == "d-1" and ok["node_id"] == 3
    assert before <= ok["started_at"] <= time.time()
    assert ok["wall_seconds"] >= 0 and ok["cpu_seconds"] >= 0
    assert failed["status"] == "FAILED"
    assert failed["error"] == "ZeroDivisionError: division by zero"


def test_to_dict_is_json_and_from_dict_round_trips(tmp_path):
    executor = TimingExecutor(tmp_path, record_format="jsonl", time_limit=30)
    data = json.loads(json.dumps(executor.to_dict()))
    assert data["short_name"] == "timing"
    rebuilt = TimingExecutor().from_dict(data)
    assert rebuilt.timing_filepath == str(tmp_path / "timing.log")
    assert rebuilt.record_format == "jsonl" and rebuilt.time_limit == 30
    assert rebuilt.to_dict() == executor.to_dict()
