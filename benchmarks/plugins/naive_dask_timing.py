"""DaskTimingExecutor measuring as a first attempt would: ``time.process_time()``.

A Dask worker runs several tasks at once, in threads of one process, so the
process's CPU time counts every task that ran beside this one: case G shows it.
"""

import time

from timing_executor.dask_timing import _EXECUTOR_PLUGIN_DEFAULTS, DaskTimingExecutor

executor_plugin_name = "NaiveDaskTimingExecutor"

__all__ = ["_EXECUTOR_PLUGIN_DEFAULTS", "NaiveDaskTimingExecutor"]


class NaiveDaskTimingExecutor(DaskTimingExecutor):
    worker_cpu_clock = staticmethod(time.process_time)
