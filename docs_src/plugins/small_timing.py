"""The smallest executor plugin that works: it times each task and records it.

It runs the task inside the Covalent server's own process. See the how-to page
for what that costs, and for TimingExecutor, which does not.
"""

import time
from pathlib import Path

from covalent.executor.base import BaseExecutor

executor_plugin_name = "SmallTimingExecutor"
DEFAULT_PATH = str(Path.home() / "timing.log")
_EXECUTOR_PLUGIN_DEFAULTS = {"timing_filepath": DEFAULT_PATH}


class SmallTimingExecutor(BaseExecutor):
    def __init__(self, timing_filepath=DEFAULT_PATH, **kwargs):
        super().__init__(**kwargs)
        self.timing_filepath = str(Path(timing_filepath).resolve())

    def run(self, function, args, kwargs, task_metadata):
        start = time.thread_time()  # the CPU clock of this thread, the task's
        result = function(*args, **kwargs)
        cpu = time.thread_time() - start
        node, dispatch = task_metadata["node_id"], task_metadata["dispatch_id"]
        with open(self.timing_filepath, "a") as records:
            records.write(f"Node {node} in dispatch {dispatch} took {cpu:.6f}s.\n")
        return result
