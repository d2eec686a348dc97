"""Reading records back: both formats, foreign lines, repeats, dispatch lookup, comparison."""

import json

import pytest

from timing_executor.server_side.records import TaskRecord
from timing_report.records_reader import NodeRun, ReadCounts, iter_records, parse_line
from timing_report.report import (
    DispatchRuns,
    UnknownDispatchError,
    collect,
    compare,
    find_dispatch,
)

DONE = TaskRecord("d-1", 3, "add", 1_800_000_000.5, 0.0123456789, 0.02)
FAILED = TaskRecord(
    "d-1", 4, "check", 1_800_000_001.0, 0.5, 0.25, "FAILED", "ValueError: bad input: 7"
)
EXITED = TaskRecord("d-1", 5, "c", 1.0, 0.5, 0.25, "FAILED", "exit code 4: process exited")
KILLED = TaskRecord("d-1", 6, "c", 1.0, 0.5, 0.25, "FAILED", "SIGKILL: killed by signal 9")
CANCELLED = TaskRecord("d-1", 7, "nap", 1.0, 0.25, 3.0, "CANCELLED")


def test_a_jsonl_record_reads_back_every_field():
    assert parse_line(FAILED.to_line("jsonl")) == (
        "d-1",
        NodeRun(
            node_id=4,
            cpu_seconds=0.5,
            status="FAILED",
            error="ValueError: bad input: 7",
            node_name="check",
            started_at=1_800_000_001.0,
            wall_seconds=0.25,
        ),
    )


def test_a_text_record_reads_back_ids_cpu_time_and_status():
    assert parse_line(DONE.to_line("text")) == (
        "d-1",
        NodeRun(node_id=3, cpu_seconds=0.012346, status="COMPLETED"),
    )
    assert parse_line(FAILED.to_line("text")) == (
        "d-1",
        NodeRun(node_id=4, cpu_seconds=0.5, status="FAILED", error="ValueError"),
    )


@pytest.mark.parametrize(
    ("record", "status", "text_error"),
    [
        (EXITED, "FAILED", "exit code 4"),
        (KILLED, "FAILED", "SIGKILL"),
        (CANCELLED, "CANCELLED", None),
    ],
)
def test_ended_processes_and_cancelled_tasks_read_back_in_both_formats(record, status, text_error):
    text_run = parse_line(record.to_line("text"))[1]
    json_run = parse_line(record.to_line("jsonl"))[1]
    assert (text_run.status, text_run.error) == (status, text_error)
    assert (json_run.status, json_run.error) == (status, record.error)
    assert text_run.cpu_seconds == json_run.cpu_seconds == record.cpu_seconds


VALID_JSON = json.loads(DONE.to_line("jsonl"))


@pytest.mark.parametrize(
    "line",
    [
        "an earlier line",
        "Node 1 in dispatch d took 0.5s of CPU time",  # no final full stop
        "Node x in dispatch d took 0.500000s of CPU time.",
        "Node 1 in dispatch d took 0.500000s of CPU time. And more.",
        DONE.to_line("jsonl")[:40],  # a half-written line
        "[1, 2, 3]",
        "{not json}",
        "\ufffd\ufffd binary \ufffd",
        json.dumps({**VALID_JSON, "node_id": "3"}),
        json.dumps({**VALID_JSON, "node_id": True}),
        json.dumps({**VALID_JSON, "node_id": -1}),
        json.dumps({**VALID_JSON, "dispatch_id": ""}),
        json.dumps({**VALID_JSON, "cpu_seconds": -0.1}),
        json.dumps({**VALID_JSON, "cpu_seconds": None}),
        json.dumps({**VALID_JSON, "status": "RUNNING"}),
        json.dumps({key: v for key, v in VALID_JSON.items() if key != "status"}),
        '{"dispatch_id": "d", "node_id": 1, "cpu_seconds": NaN, "status": "COMPLETED"}',
    ],
)
def test_foreign_and_malformed_lines_are_not_records(line):
    assert parse_line(line) is None


def test_optional_jsonl_fields_may_be_missing_or_wrong():
    line = json.dumps({"dispatch_id": "d", "node_id": 1, "cpu_seconds": 2, "status": "COMPLETED"})
    assert parse_line(line) == ("d", NodeRun(1, 2.0, "COMPLETED"))
    odd = {**VALID_JSON, "wall_seconds": "soon", "node_name": 5, "started_at": -3}
    assert parse_line(json.dumps(odd)) == ("d-1", NodeRun(3, 0.0123456789, "COMPLETED"))


def test_skipped_lines_are_counted_with_the_first_ones_number_and_blank_lines_ignored():
    lines = ["", DONE.to_line(), "junk\n", "  \n", FAILED.to_line("jsonl"), "more junk"]
    counts = ReadCounts()
    records = list(iter_records(lines, counts))
    assert [run.node_id for _, run in records] == [3, 4]
    assert (counts.skipped, counts.first_skipped_line) == (2, 3)


def write(path, *lines):
    path.write_text("".join(lines))
    return path


def test_collect_keeps_dispatch_order_and_the_last_record_of_a_repeated_node(tmp_path):
    path = write(
        tmp_path / "t.log",
        TaskRecord("second", 0, "a", 1.0, 9.0, 9.0).to_line("jsonl"),
        DONE.to_line("jsonl"),
        FAILED.to_line(),
        TaskRecord("d-1", 3, "add", 2.0, 0.75, 1.5).to_line("jsonl"),
    )
    collected = collect(path)
    assert list(collected.dispatches) == ["second", "d-1"]
    nodes = collected.dispatches["d-1"].nodes
    assert nodes[3].cpu_seconds == 0.75 and nodes[4].status == "FAILED"
    assert collected.repeated == 1


def test_collect_keeps_only_the_dispatches_asked_for(tmp_path):
    path = write(tmp_path / "t.log", DONE.to_line(), TaskRecord("e", 0, "a", 1, 1, 1).to_line())
    assert list(collect(path, lambda d: d == "e").dispatches) == ["e"]


def test_collect_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        collect(tmp_path / "missing.log")
    assert raised.value.filename == str(tmp_path / "missing.log")


def test_a_dispatch_is_found_by_its_id_or_a_unique_prefix(tmp_path):
    path = write(
        tmp_path / "t.log",
        *(TaskRecord(d, 0, "a", 1, 1, 1).to_line() for d in ("abc", "abcd", "abx")),
    )
    collected = collect(path)
    assert find_dispatch(collected, "abc").dispatch_id == "abc"
    assert find_dispatch(collected, "abcd").dispatch_id == "abcd"
    assert find_dispatch(collected, "abx").dispatch_id == "abx"
    with pytest.raises(UnknownDispatchError, match=r"'ab' is ambiguous .*abc, abcd, abx"):
        find_dispatch(collected, "ab")
    with pytest.raises(UnknownDispatchError, match=rf"no record of dispatch 'zz' in {path}"):
        find_dispatch(collected, "zz")


def test_totals_have_wall_time_only_when_every_node_has_it():
    runs = DispatchRuns("d", {0: NodeRun(0, 1.0, "COMPLETED", wall_seconds=4.0)})
    assert (runs.totals.wall_seconds, runs.totals.cpu_per_wall) == (4.0, 0.25)
    runs.nodes[1] = NodeRun(1, 2.0, "FAILED")
    totals = runs.totals
    assert (totals.nodes, totals.cpu_seconds, totals.failed) == (2, 3.0, 1)
    assert (totals.wall_seconds, totals.cpu_per_wall) == (None, None)


def test_compare_pairs_nodes_by_id_with_difference_and_ratio():
    a = DispatchRuns("a", {0: NodeRun(0, 1.0, "COMPLETED"), 1: NodeRun(1, 0.0, "COMPLETED")})
    b = DispatchRuns(
        "b",
        {
            0: NodeRun(0, 3.0, "FAILED", node_name="add"),
            1: NodeRun(1, 2.0, "COMPLETED"),
            2: NodeRun(2, 1.0, "COMPLETED"),
        },
    )
    first, second, third = compare(a, b)
    assert (first.node_id, first.cpu(), first.status, first.node_name) == (
        0,
        (1.0, 3.0),
        "COMPLETED -> FAILED",
        "add",
    )
    assert second.cpu() == (0.0, 2.0) and second.wall() == (None, None)
    assert (third.a, third.cpu(), third.status) == (None, (None, 1.0), "- -> COMPLETED")
