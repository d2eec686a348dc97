"""An executor that writes down each call Covalent makes to it, and where.

Each line of its log names the call, the process and the executor's ``label``,
so a workflow shows in which order, in which process and with which values
Covalent builds and calls an executor.
"""

import json
import os
from pathlib import Path

from covalent.executor.base import BaseExecutor

executor_plugin_name = "CallLogExecutor"
DEFAULT_LOG = str(Path.home() / "call-log.jsonl")
_EXECUTOR_PLUGIN_DEFAULTS = {"log_path": DEFAULT_LOG, "label": "covalent.conf"}


class CallLogExecutor(BaseExecutor):
    def __init__(self, log_path=DEFAULT_LOG, label="covalent.conf", **kwargs):
        super().__init__(**kwargs)
        self.log_path, self.label = str(log_path), label
        self.write_down("__init__")

    def write_down(self, call, **details):
        line = {"call": call, "pid": os.getpid(), "label": self.label, **details}
        with open(self.log_path, "a") as log:
            log.write(json.dumps(line) + "\n")

    def setup(self, task_metadata):
        self.write_down("setup")

    def run(self, function, args, kwargs, task_metadata):
        self.write_down(
            "run",
            task_metadata=sorted(task_metadata),
            function=type(function).__name__,
        )
        self.set_job_handle(f"job {task_metadata['node_id']}")  # kept for cancel()
        return function(*args, **kwargs)

    def cancel(self, task_metadata, job_handle):
        self.write_down(
            "cancel", task_metadata=task_metadata, job_handle=job_handle
        )
        return True

    def teardown(self, task_metadata):
        self.write_down("teardown")
