"""Dispatch the how-to page's workflow to a real local Covalent server with each executor."""

import json
import re

import pytest

from tests.workflows import (
    add_multiply_workflow,
    dispatch_and_wait,
    failing_workflow,
    node_ids_by_name,
)
from timing_executor.async_timing import AsyncTimingExecutor
from timing_executor.timing import DEFAULT_TIMING_FILEPATH, TimingExecutor

pytestmark = pytest.mark.server
EXECUTORS = {"timing": TimingExecutor, "async_timing": AsyncTimingExecutor}


def records_of(path, dispatch_id):
    with open(path) as records:
        return [line for line in records.read().splitlines() if dispatch_id in line]


def assert_add_and_multiply_recorded(result, path):
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == 6
    nodes = node_ids_by_name(result)
    lines = records_of(path, result.dispatch_id)
    dispatch = re.escape(result.dispatch_id)
    pattern = rf"Node (\d+) in dispatch {dispatch} took \d+\.\d{{6}}s of CPU time\."
    recorded = sorted(int(re.fullmatch(pattern, line).group(1)) for line in lines)
    assert recorded == sorted([nodes["add"], nodes["multiply"]])


@pytest.mark.parametrize("short_name", EXECUTORS)
def test_instance_form(covalent_server, tmp_path, short_name):
    executor = EXECUTORS[short_name](tmp_path / "records.log")
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert_add_and_multiply_recorded(result, executor.timing_filepath)


@pytest.mark.parametrize("short_name", EXECUTORS)
def test_short_name_form_uses_the_plugin_default_path(covalent_server, short_name):
    result = dispatch_and_wait(add_multiply_workflow(short_name), 1, 2)
    assert_add_and_multiply_recorded(result, DEFAULT_TIMING_FILEPATH)


@pytest.mark.parametrize("short_name", EXECUTORS)
def test_failing_task_fails_the_node_with_its_message_and_is_recorded(
    covalent_server, tmp_path, short_name
):
    executor = EXECUTORS[short_name](tmp_path / "records.jsonl", record_format="jsonl")
    result = dispatch_and_wait(failing_workflow(executor), 7)
    assert str(result.status) == "FAILED"
    node_id = node_ids_by_name(result)["check"]
    assert str(result.get_node_result(node_id)["status"]) == "FAILED"
    assert "bad input: 7" in result.get_node_result(node_id)["error"]
    (record,) = map(json.loads, records_of(executor.timing_filepath, result.dispatch_id))
    assert record["status"] == "FAILED" and record["node_id"] == node_id
    assert record["node_name"] == "check"
    assert record["error"] == "ValueError: bad input: 7"
