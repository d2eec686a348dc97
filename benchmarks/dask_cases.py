"""Case G: DaskTimingExecutor on a real Dask cluster of 2 workers x 2 threads.

Run on a Covalent server without a cluster of its own; the scheduler and workers
are started here (covalent_plugin_testing) and given to the executors by address.
"""

from functools import partial
from pathlib import Path

import covalent as ct
from covalent.executor.executor_plugins.dask import DaskExecutor

from benchmarks import cases, measures, tasks
from benchmarks.plugins.naive_dask_timing import NaiveDaskTimingExecutor
from covalent_plugin_testing.dask_cluster import running_dask_cluster
from timing_executor.dask_timing import DaskTimingExecutor

#: label -> what it is, for the tables.
LABELS = {
    "dask_timing": "timing_executor DaskTimingExecutor (run(), the worker thread's clock)",
    "dask_naive": "the same measuring time.process_time() on the worker",
    "dask": "Covalent's DaskExecutor (its send/poll/receive path)",
}


def make_dask_executor(label: str, log_path: Path, address: str):
    """The executor called ``label``, on the scheduler at ``address``."""
    if label == "dask":
        return DaskExecutor(scheduler_address=address)
    if label == "dask_timing":
        return DaskTimingExecutor(address, log_path)
    if label == "dask_naive":
        return NaiveDaskTimingExecutor(address, log_path)
    raise ValueError(f"unknown Dask executor label {label!r}: use one of {list(LABELS)}")


def spans_by_workers(
    addresses: dict[int, str], repetitions: int, tasks_count: int, naps: tuple[float, ...]
) -> cases.CaseResult:
    """``tasks_count`` tasks of ``sleep(nap)`` for each nap, on clusters of 1 and 2
    workers (``addresses``: workers -> scheduler), interleaved; the ratio of the spans.

    The chart gets the intervals of the longest nap."""
    out = cases.CaseResult()
    for rep in range(repetitions):
        for nap in naps:
            tasks_run = f"{tasks_count} x sleep({nap})"
            spans = {}
            for workers, address in addresses.items():
                label = f"dask_timing, {workers} worker{'s' if workers > 1 else ''}"
                executor = DaskTimingExecutor(address, "/dev/null")
                workflow = tasks.sleep_workflow(executor, tasks_count, nap)
                result = cases.finished(ct.dispatch(workflow)(tasks_count))
                intervals = [tuple(interval) for interval in result.result]
                spans[workers] = measures.span(intervals)
                gap = measures.start_gap(intervals)
                out.add("G", label, f"{tasks_run}, span (s)", spans[workers], rep)
                out.add("G", label, f"{tasks_run}, start gap (s)", gap, rep)
                at_once = measures.most_at_once(intervals)
                out.add("G", label, f"{tasks_run}, most at once", at_once, rep)
                if nap == max(naps):
                    out.intervals[label] = intervals
            ratio = spans[2] / spans[1]
            out.add("G", "dask_timing", f"{tasks_run}, span on 2 / on 1 worker", ratio, rep)
    return out


def on_cluster(
    repetitions: int,
    workdir: Path,
    measured: tuple[str, ...] = ("dask_timing", "dask_naive"),
    cpu_seconds: float = 0.5,
    trivial: int = 60,
    sleepers: int = 40,
    naps: tuple[float, ...] = (0.5, 2.0),
) -> cases.CaseResult:
    """G: the ``measured`` executors' accuracy, the cost of ``trivial`` tasks against
    DaskExecutor, and the span of ``sleepers`` naps of each length on 1 and on 2
    workers. The server starts only a few tasks a second, so half-second naps show
    its limit, and 2-second naps the workers'."""
    out = cases.CaseResult()
    with (
        running_dask_cluster(workdir / "G-cluster-2", workers=2) as pair,
        running_dask_cluster(workdir / "G-cluster-1", workers=1) as single,
    ):
        make = partial(make_dask_executor, address=pair.address)
        out.extend(
            cases.accuracy(measured, repetitions, workdir, 4, cpu_seconds, case="G", make=make)
        )
        overhead = ["dask", "dask_timing"]
        out.extend(cases.dispatch_overhead(overhead, repetitions, workdir, trivial, "G", make))
        addresses = {1: single.address, 2: pair.address}
        out.extend(spans_by_workers(addresses, repetitions, sleepers, naps))
    return out
