"""The naive executor made async the obvious way: ``asyncio.to_thread`` around it.

Same measuring and record as :mod:`naive_timing`; the task runs in the event
loop's default thread pool, which the server shares with ``local`` tasks.
"""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from covalent.executor.base import AsyncBaseExecutor

executor_plugin_name = "NaiveToThreadExecutor"

_EXECUTOR_PLUGIN_DEFAULTS = {"timing_filepath": str(Path.home() / "naive-timing.log")}


def _run_and_append(function: Callable, args: list, kwargs: dict, task_metadata: dict, path: str):
    start = time.process_time()
    result = function(*args, **kwargs)
    time_taken = time.process_time() - start
    with open(path, "a") as f:
        f.writelines(
            f"Node {task_metadata['node_id']} in dispatch "
            f"{task_metadata['dispatch_id']} took {time_taken}s of CPU time."
        )
    return result


class NaiveToThreadExecutor(AsyncBaseExecutor):
    def __init__(self, timing_filepath=_EXECUTOR_PLUGIN_DEFAULTS["timing_filepath"], **kwargs):
        super().__init__(**kwargs)
        self.timing_filepath = str(Path(timing_filepath).resolve())

    async def run(self, function: Callable, args: list, kwargs: dict, task_metadata: dict):
        return await asyncio.to_thread(
            _run_and_append, function, args, kwargs, task_metadata, self.timing_filepath
        )
