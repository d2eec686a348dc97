"""D, without a server: what ``run()`` adds to each task call, in microseconds.

Calls each executor's ``run()`` directly in this process with a task that does
nothing, and subtracts the cost of calling that task directly.
"""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.cases import CaseResult
from benchmarks.executors import make_executor
from timing_executor.timing import TaskRecord, append_line

METADATA = {"dispatch_id": "benchmark", "node_id": 0}


def nothing() -> None:
    """The task: no work, so only the executor's cost is left."""


def _microseconds_per_call(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def _async_microseconds_per_call(executor, calls: int) -> float:
    async def many() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await executor.run(nothing, [], {}, METADATA)
        return (time.perf_counter() - start) / calls * 1e6

    return asyncio.run(many())


def _append_microseconds(variant: str, path: Path, calls: int) -> float:
    """The cost of writing one record the way ``variant`` writes it."""
    record = TaskRecord("benchmark", 0, "nothing", time.time(), 1e-6, 1e-6)
    record_format = "jsonl" if variant.endswith("jsonl") else "text"
    line = record.to_line(record_format)
    if variant == "naive":

        def write() -> None:
            with open(path, "a") as f:
                f.writelines(line.rstrip("\n"))

        return _microseconds_per_call(write, calls)
    return _microseconds_per_call(lambda: append_line(str(path), line), calls)


#: label -> (executor label, record format, awaited?)
VARIANTS = {
    "naive": ("naive", "text", False),
    "sync text": ("sync", "text", False),
    "sync jsonl": ("sync", "jsonl", False),
    "to_thread": ("to_thread", "text", True),
    "async text": ("async", "text", True),
    "async jsonl": ("async", "jsonl", True),
}


def run_overhead(repetitions: int, workdir: Path, calls: int = 5000) -> CaseResult:
    """Per-call overhead of ``run()`` and the share of it spent appending the record."""
    out = CaseResult()
    for rep in range(repetitions):
        direct = _microseconds_per_call(nothing, calls)
        for variant, (label, record_format, awaited) in VARIANTS.items():
            log = workdir / f"D-run-{variant.replace(' ', '-')}-{rep}.log"
            executor = make_executor(label, log, record_format)
            if awaited:
                per_call = _async_microseconds_per_call(executor, calls)
            else:
                per_call = _microseconds_per_call(
                    lambda executor=executor: executor.run(nothing, [], {}, METADATA), calls
                )
            overhead = per_call - direct
            out.add("D run()", variant, "run() overhead per call (us)", overhead, rep)
            if not awaited:
                append = _append_microseconds(variant, workdir / f"append-{rep}.log", calls)
                out.add("D run()", variant, "share spent appending", append / overhead, rep)
    return out
