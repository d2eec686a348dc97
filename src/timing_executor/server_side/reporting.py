"""Turning a task's end into what Covalent expects: the record, the task's output,
and its result or the exception that fails or cancels its node."""

# --8<-- [start:reporting]
import sys
from typing import Any

from covalent._shared_files.exceptions import TaskCancelledError, TaskRuntimeError
from covalent._shared_files.util_classes import RESULT_STATUS
from covalent.executor.schemas import TaskUpdate

from timing_executor.server_side.records import TaskRecord, append_record, task_ids
from timing_executor.server_side.task_runs import TaskEnd


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


# --8<-- [end:reporting]
