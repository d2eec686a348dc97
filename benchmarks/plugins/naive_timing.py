"""The executor exactly as the original guide page wrote it: the baseline.

Changes, all needed to run at all on Covalent 0.240.0: ``timing_filepath`` has a
default in ``_EXECUTOR_PLUGIN_DEFAULTS``, so the server, which builds the executor as
``cls(**section)`` from the plugin's section of ``covalent.conf``, finds a section and
a value (also as ``__init__``'s default, for calls by hand); ``super().__init__(**kwargs)`` is
called (without it every task fails with ``AttributeError: ... 'log_stdout'``); and
the class is named ``NaiveTimingExecutor`` so it does not replace this package's
``TimingExecutor`` in ``covalent.executor``. It measures ``time.process_time()``,
the CPU time of every thread of the server, and writes records without a newline.
"""

import time
from pathlib import Path
from typing import Callable, Dict, List  # noqa: UP035  (kept as the page wrote it)

from covalent.executor import BaseExecutor

executor_plugin_name = "NaiveTimingExecutor"

_EXECUTOR_PLUGIN_DEFAULTS = {"timing_filepath": str(Path.home() / "naive-timing.log")}


class NaiveTimingExecutor(BaseExecutor):
    def __init__(self, timing_filepath=_EXECUTOR_PLUGIN_DEFAULTS["timing_filepath"], **kwargs):
        super().__init__(**kwargs)
        self.timing_filepath = str(Path(timing_filepath).resolve())

    def run(self, function: Callable, args: List, kwargs: Dict, task_metadata: Dict):  # noqa: UP006
        start = time.process_time()

        result = function(*args, **kwargs)

        time_taken = time.process_time() - start

        with open(f"{self.timing_filepath}", "a") as f:
            f.writelines(
                f"Node {task_metadata['node_id']} in dispatch "
                f"{task_metadata['dispatch_id']} took {time_taken}s of CPU time."
            )

        return result
