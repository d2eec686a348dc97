"""The async-aware TimingExecutor: same records, never blocks Covalent's event loop.

Covalent awaits an ``AsyncBaseExecutor``'s ``run()`` on the server's event loop,
so a task called there directly would stall every other dispatch until it ends.
``AsyncTimingExecutor`` hands each task to a thread of its own pool and awaits it;
the thread measures the task with ``time.thread_time()`` and appends the record,
exactly as :class:`~timing_executor.timing.TimingExecutor` does.

Why its own pool: ``asyncio.to_thread`` (and ``run_in_executor(None, ...)``) use
the loop's default pool, which has ``min(32, cores + 4)`` threads (6 on 2 cores)
and is shared with the server itself and with Covalent's ``local`` and sync
executors. Measured with ``tox -e bench`` (2 cores): 20 tasks that each sleep 1 s
took 4.06 s through ``to_thread``, 6 at a time, and six 6-second tasks kept an
unrelated ``local`` task from starting until one of them ended (5.9 s). With a pool
of :data:`MAX_CONCURRENT_TASKS` threads all 20 ran at once (1.88 s in all, 0.88 s of
it the server's own start stagger) and the ``local`` task started as on an idle
server. Threads also keep the per-task cost to a hand-off (about 0.1 ms); a process
per task would cost a Python start-up and a re-import of the task's modules, and a
Dask cluster a network round trip.
"""

# --8<-- [start:imports]
import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from covalent.executor.base import AsyncBaseExecutor

# --8<-- [end:imports]
# --8<-- [start:helper-imports]
from timing_executor.timing import (
    DEFAULT_TIMING_FILEPATH,
    check_record_format,
    resolve_timing_filepath,
    run_and_record,
)

# --8<-- [end:helper-imports]

# --8<-- [start:plugin-attributes]
executor_plugin_name = "AsyncTimingExecutor"

_EXECUTOR_PLUGIN_DEFAULTS = {
    "timing_filepath": DEFAULT_TIMING_FILEPATH,
    "record_format": "text",
}

#: Tasks of this executor that run at once in one process; more wait for a thread.
MAX_CONCURRENT_TASKS = 64

_task_threads = ThreadPoolExecutor(MAX_CONCURRENT_TASKS, thread_name_prefix="async-timing")
# --8<-- [end:plugin-attributes]


# --8<-- [start:executor]
class AsyncTimingExecutor(AsyncBaseExecutor):
    """Run each task in a thread of this module's pool and record its CPU time.

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

    async def run(self, function: Callable, args: list, kwargs: dict, task_metadata: dict) -> Any:
        """Run the task in a pool thread, without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            _task_threads,
            run_and_record,
            function,
            args,
            kwargs,
            task_metadata,
            self.timing_filepath,
            self.record_format,
        )


# --8<-- [end:executor]
