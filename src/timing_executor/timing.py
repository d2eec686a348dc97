"""A Covalent executor plugin that runs each task in a process of its own and
records how much CPU time the task used.

``TimingExecutor`` never calls a task in the Covalent server's process. A small
*launcher* process, started once and with Covalent already imported, forks one
process per task. Whatever the task does there (return, raise, ``sys.exit()``,
``os._exit()``, crash, print), only its own node is affected. The task measures
its CPU time where it runs; the executor, back in the server, appends the record,
by default the sentence::

    Node 1 in dispatch 5b8e0c0e-... took 0.000012s of CPU time.

This module is the plugin alone. What runs in the launcher and the task's process
is in :mod:`timing_executor.task_side`; what runs in the server besides the
executor (the launcher's client, the task's run, the records) is in
:mod:`timing_executor.server_side`.
"""

# --8<-- [start:imports]
import os
from collections.abc import Callable
from typing import Any

from covalent._shared_files.exceptions import TaskCancelledError
from covalent.executor.base import BaseExecutor
from covalent.executor.schemas import TaskUpdate

from timing_executor.server_side.defaults import empty_means_default
from timing_executor.server_side.launchers import cancel_task
from timing_executor.server_side.records import (
    DEFAULT_TIMING_FILEPATH,
    check_record_format,
    resolve_timing_filepath,
    task_ids,
    task_name,
)
from timing_executor.server_side.reporting import refused_tasks, report_end
from timing_executor.server_side.task_runs import TaskRun

# --8<-- [end:imports]


# --8<-- [start:plugin-attributes]
executor_plugin_name = "TimingExecutor"

#: The values the Covalent server builds the executor from (see ``covalent.conf``):
#: ``timing_filepath``
#: :data:`~timing_executor.server_side.records.DEFAULT_TIMING_FILEPATH`,
#: ``record_format`` "text".
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
            :data:`~timing_executor.server_side.records.DEFAULT_TIMING_FILEPATH`.
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
