"""The async-aware TimingExecutor: same processes and records, and it never
blocks Covalent's event loop.

Covalent awaits an ``AsyncBaseExecutor``'s ``run()`` on the server's event loop,
the one thread that also answers requests and moves every dispatch forward.
``AsyncTimingExecutor`` starts each task in a process of its own, exactly as
:class:`~timing_executor.timing.TimingExecutor` does, and awaits its end, so no
thread waits for a task: any number of tasks can run at once, and none of them
takes a thread from the server's shared pool. The little file work around a task
(writing it out, reading its result back) runs in a few threads of this module's
own, off the event loop.
"""

# --8<-- [start:imports]
import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from covalent._shared_files.exceptions import TaskCancelledError
from covalent.executor.base import AsyncBaseExecutor
from covalent.executor.schemas import TaskUpdate

# --8<-- [end:imports]
# --8<-- [start:helper-imports]
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

# --8<-- [end:helper-imports]

# --8<-- [start:plugin-attributes]
executor_plugin_name = "AsyncTimingExecutor"

_EXECUTOR_PLUGIN_DEFAULTS = {
    "timing_filepath": DEFAULT_TIMING_FILEPATH,
    "record_format": "text",
}

#: Threads for the file work around each task, so it never blocks the event loop.
_file_threads = ThreadPoolExecutor(4, thread_name_prefix="async-timing")
# --8<-- [end:plugin-attributes]


# --8<-- [start:executor]
@empty_means_default(_EXECUTOR_PLUGIN_DEFAULTS)
class AsyncTimingExecutor(AsyncBaseExecutor):
    """Run each task in a process of its own, await it, record its CPU time.

    Takes the same arguments as :class:`~timing_executor.timing.TimingExecutor`
    and writes the same records.
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

    async def run(
        self, function: Callable, args: list, kwargs: dict, task_metadata: dict
    ) -> Any:
        """Run the task in its own process without blocking the event loop."""
        task_ids(task_metadata)  # bad metadata fails before anything starts
        loop = asyncio.get_running_loop()
        task = await loop.run_in_executor(_file_threads, TaskRun)
        try:
            if hasattr(self, "_send_queue"):  # run by Covalent, not called by hand
                await self.set_job_handle(task.task_id)  # what cancel() gets back
                if await self.get_cancel_requested():  # asked before it was saved
                    task.launcher.cancel(task.task_id)
            start = partial(task.start, function, args, kwargs)
            if not await loop.run_in_executor(_file_threads, start):
                raise TaskCancelledError(
                    "The task was cancelled before it started."
                )
            await asyncio.wrap_future(task.exited)  # the event loop stays free
            end = await loop.run_in_executor(_file_threads, task.end)
        finally:
            task.discard()  # if anything went wrong: no task or folder is left
        report = partial(report_end, end, task_metadata, task_name(function), self)
        return await loop.run_in_executor(_file_threads, report)

    async def cancel(self, task_metadata: dict, job_handle: Any) -> bool:
        """Stop the task and every process it started; ``run()`` then raises
        ``TaskCancelledError``, which makes the node CANCELLED."""
        return cancel_task(job_handle)

    async def receive(
        self, task_group_metadata: dict, data: Any
    ) -> list[TaskUpdate]:
        """Report CANCELLED the tasks Covalent refused to start."""
        return refused_tasks(task_group_metadata, data)


# --8<-- [end:executor]
