"""D, without a server: what ``run()`` costs per task, in milliseconds.

Calls each executor's ``run()`` directly in this process with a task that does
nothing. ``naive`` calls the task in the calling thread; ``sync`` and ``async``
start a process for it, so the difference is what isolating a task costs.
"""

import asyncio
import time
from pathlib import Path

from benchmarks.cases import CaseResult
from benchmarks.executors import make_executor
from benchmarks.tiny_tasks import nothing  # quick to import in a task's process

METADATA = {"dispatch_id": "benchmark", "node_id": 0}


def _milliseconds_per_call(executor, calls: int) -> float:
    def call():
        outcome = executor.run(nothing, [], {}, METADATA)
        return asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome

    call()  # the first call starts the launcher: not counted
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1000


def run_overhead(repetitions: int, workdir: Path, calls: int = 100) -> CaseResult:
    """Cost of one ``run()`` call per variant, and the isolation's share of it."""
    out = CaseResult()
    for rep in range(repetitions):
        costs = {}
        for variant in ("naive", "sync", "async"):
            executor = make_executor(variant, workdir / f"D-run-{variant}-{rep}.log")
            costs[variant] = _milliseconds_per_call(executor, calls)
            out.add("D run()", variant, "run() cost per task (ms)", costs[variant], rep)
        for variant in ("sync", "async"):
            isolation = costs[variant] - costs["naive"]
            out.add("D run()", variant, "added by running the task apart (ms)", isolation, rep)
    return out
