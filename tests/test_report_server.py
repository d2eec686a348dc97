"""Report on records a real Covalent server wrote with both executors and both formats."""

import json
import subprocess
import sys

import pytest

from tests.workflows import (
    add_multiply_workflow,
    dispatch_and_wait,
    failing_workflow,
    node_ids_by_name,
)
from timing_executor.async_timing import AsyncTimingExecutor
from timing_executor.timing import TimingExecutor

pytestmark = pytest.mark.server


def report_json(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "timing_report", "report", *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def test_report_compares_dispatches_recorded_by_both_executors(covalent_server, tmp_path):
    path = tmp_path / "timing.log"
    text_run = dispatch_and_wait(add_multiply_workflow(TimingExecutor(path)), 1, 2)
    jsonl_run = dispatch_and_wait(
        add_multiply_workflow(AsyncTimingExecutor(path, record_format="jsonl")), 1, 2
    )
    failed_run = dispatch_and_wait(
        failing_workflow(TimingExecutor(path, record_format="jsonl")), 7
    )
    assert (text_run.result, jsonl_run.result) == (6, 6)
    nodes = node_ids_by_name(jsonl_run)
    assert node_ids_by_name(text_run) == nodes

    everything = report_json(str(path))
    assert [d["dispatch_id"] for d in everything["dispatches"]] == [
        text_run.dispatch_id,
        jsonl_run.dispatch_id,
        failed_run.dispatch_id,
    ]
    text_nodes, jsonl_nodes, failed_nodes = (d["nodes"] for d in everything["dispatches"])
    assert [(n["node_id"], n["status"], n["wall_seconds"]) for n in text_nodes] == [
        (nodes["add"], "COMPLETED", None),
        (nodes["multiply"], "COMPLETED", None),
    ]
    for node in jsonl_nodes:
        assert node["cpu_seconds"] >= 0 and 0 < node["wall_seconds"] < 60
        assert node["node_id"] == nodes[node["node_name"]]
    (failed,) = failed_nodes
    assert (failed["node_name"], failed["status"]) == ("check", "FAILED")
    assert failed["error"] == "ValueError: bad input: 7"

    comparison = report_json(str(path), "--compare", text_run.dispatch_id, jsonl_run.dispatch_id)
    assert [n["node_name"] for n in comparison["nodes"]] == ["add", "multiply"]
    for node in comparison["nodes"]:
        assert node["a"]["node_id"] == node["b"]["node_id"] == nodes[node["node_name"]]
        assert node["cpu_difference"] == pytest.approx(
            node["b"]["cpu_seconds"] - node["a"]["cpu_seconds"]
        )
