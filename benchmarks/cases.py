"""Cases A-D, dispatched to whichever Covalent server this process is configured for.

Each case runs every variant once per repetition, variants interleaved, and
returns :class:`Sample` values; ratios are taken within one repetition.
"""

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import covalent as ct

from benchmarks import measures, tasks
from benchmarks.executors import MakeExecutor, make_executor


@dataclass(frozen=True)
class Sample:
    case: str
    variant: str
    metric: str
    value: float
    repetition: int


@dataclass
class CaseResult:
    samples: list[Sample] = field(default_factory=list)
    #: variant -> its task (start, end) times in the last repetition, for the chart.
    intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def extend(self, other: "CaseResult") -> "CaseResult":
        self.samples += other.samples
        self.intervals |= other.intervals
        return self

    def add(self, case: str, variant: str, metric: str, value: float, repetition: int) -> None:
        self.samples.append(Sample(case, variant, metric, value, repetition))


def finished(dispatch_id: str):
    result = ct.get_result(dispatch_id, wait=True)
    if str(result.status) != "COMPLETED":
        raise RuntimeError(f"dispatch {dispatch_id} ended {result.status}: {result.error}")
    return result


def warm_up() -> None:
    """Dispatch one trivial workflow, so no case pays for the server's first dispatch."""
    finished(ct.dispatch(tasks.trivial_workflow("local", 2))(2))


def accuracy(
    variants,
    repetitions: int,
    workdir: Path,
    tasks_count: int = 4,
    cpu_seconds: float = 0.5,
    case: str = "A",
    make: MakeExecutor = make_executor,
) -> CaseResult:
    """A: CPU-bound tasks burning at once; recorded CPU time divided by the task's own.

    The tasks of each dispatch wait at a barrier (a fresh folder) before they burn.
    """
    out = CaseResult()
    for rep in range(repetitions):
        for variant in variants:
            log = workdir / f"{case}-{variant}-{rep}.log"
            executor = make(variant, log)
            barrier = tempfile.mkdtemp(dir=workdir, prefix=f"{case}-{variant}-{rep}-barrier-")
            workflow = tasks.cpu_workflow(executor, tasks_count, cpu_seconds, barrier)
            result = finished(ct.dispatch(workflow)(tasks_count))
            outputs = tasks.electron_outputs(result, "burn")
            recorded = measures.recorded_cpu_seconds(log.read_text(), result.dispatch_id)
            ratios = [recorded[node] / cpu for node, (cpu, *_) in outputs.items()]
            intervals = [(start, end) for _, start, end, _ in outputs.values()]
            met = sum(met for *_, met in outputs.values())
            out.add(case, variant, "tasks that met the barrier", met, rep)
            out.add(case, variant, "most at once", measures.most_at_once(intervals), rep)
            out.add(case, variant, "recorded / true, median task", measures.median(ratios), rep)
            out.add(case, variant, "recorded / true, worst task", max(ratios), rep)
    return out


def concurrency(
    variants, repetitions: int, workdir: Path, tasks_count: int = 20, seconds: float = 1.0
) -> CaseResult:
    """B: tasks that sleep; how many ran at once and how long the whole took."""
    out = CaseResult()
    for rep in range(repetitions):
        spans = {}
        for variant in variants:
            executor = make_executor(variant, workdir / f"B-{variant}-{rep}.log")
            workflow = tasks.sleep_workflow(executor, tasks_count, seconds)
            intervals = [tuple(i) for i in finished(ct.dispatch(workflow)(tasks_count)).result]
            spans[variant] = measures.span(intervals)
            gap = measures.start_gap(intervals)
            out.add("B", variant, "span (s)", spans[variant], rep)
            out.add("B", variant, "start gap (s)", gap, rep)
            out.add("B", variant, "span - start gap (s)", spans[variant] - gap, rep)
            out.add("B", variant, "most at once", measures.most_at_once(intervals), rep)
            out.intervals[variant] = intervals
        if "local" in spans:
            for variant, value in spans.items():
                out.add("B", variant, "span / local span", value / spans["local"], rep)
    return out


def _wait_for_markers(marker_dir: Path, count: int, limit: float) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and len(list(marker_dir.iterdir())) < count:
        time.sleep(0.05)
    return len(list(marker_dir.iterdir()))


def starvation(
    variants, repetitions: int, workdir: Path, long_tasks: int = 6, seconds: float = 6.0
) -> CaseResult:
    """C: start delay of one ``local`` task while long tasks of a variant run.

    The variant ``idle`` runs the ``local`` task alone: the delay without load.
    """
    out = CaseResult()
    for rep in range(repetitions):
        delays = {}
        for variant in variants:
            long_id = None
            if variant != "idle":
                executor = make_executor(variant, workdir / f"C-{variant}-{rep}.log")
                markers = Path(tempfile.mkdtemp(dir=workdir, prefix=f"C-{variant}-"))
                workflow = tasks.marked_sleep_workflow(executor, long_tasks, seconds, str(markers))
                long_id = ct.dispatch(workflow)(long_tasks)
                started = _wait_for_markers(markers, long_tasks, limit=seconds / 2)
                out.add("C", variant, "long tasks running", started, rep)
            dispatched_at = time.time()
            clock = finished(ct.dispatch(tasks.clock_workflow("local"))())
            delays[variant] = clock.result - dispatched_at
            out.add("C", variant, "local task start delay (s)", delays[variant], rep)
            if long_id:
                finished(long_id)
        if "idle" in delays:
            for variant, delay in delays.items():
                out.add("C", variant, "delay beyond idle (s)", delay - delays["idle"], rep)
    return out


def dispatch_overhead(
    variants,
    repetitions: int,
    workdir: Path,
    tasks_count: int = 300,
    case: str = "D",
    make: MakeExecutor = make_executor,
) -> CaseResult:
    """D: seconds from dispatch to done for trivial tasks, and the ratio to the first
    variant (``local``)."""
    out = CaseResult()
    baseline = variants[0]
    for rep in range(repetitions):
        elapsed = {}
        for variant in variants:
            executor = make(variant, workdir / f"{case}-{variant}-{rep}.log")
            workflow = tasks.trivial_workflow(executor, tasks_count)
            start = time.perf_counter()
            finished(ct.dispatch(workflow)(tasks_count))
            elapsed[variant] = time.perf_counter() - start
            out.add(
                case,
                variant,
                f"{tasks_count} trivial tasks, dispatch to done (s)",
                elapsed[variant],
                rep,
            )
        for variant, value in elapsed.items():
            ratio = value / elapsed[baseline]
            out.add(case, variant, f"time / {baseline} time", ratio, rep)
    return out


def task_memory(
    variants, repetitions: int, workdir: Path, server_port: int, tasks_count: int = 20
) -> CaseResult:
    """M: memory of the processes of ``tasks_count`` tasks that sleep at the same time.

    Measured once every task has started: the sum over the tasks' processes (each
    task's supervisor and its own process) of their USS (memory only that process
    holds) and PSS (its share of what it shares), and the launcher's own. Only the
    async executor runs 20 at once.
    """
    out = CaseResult()
    for rep in range(repetitions):
        for variant in variants:
            executor = make_executor(variant, workdir / f"M-{variant}-{rep}.log")
            markers = Path(tempfile.mkdtemp(dir=workdir, prefix=f"M-{variant}-"))
            workflow = tasks.marked_sleep_workflow(executor, tasks_count, 4.0, str(markers))
            dispatch_id = ct.dispatch(workflow)(tasks_count)
            started = _wait_for_markers(markers, tasks_count, limit=30)
            launcher, task_processes = measures.launcher_and_tasks(server_port)
            infos = [process.memory_full_info() for process in task_processes]
            mb = 2**20
            out.add("M", variant, "tasks running when measured", started, rep)
            out.add("M", variant, "processes measured (2 per task)", len(infos), rep)
            out.add(
                "M",
                variant,
                "task processes, USS summed (MB)",
                sum(i.uss for i in infos) / mb,
                rep,
            )
            out.add(
                "M",
                variant,
                "task processes, PSS summed (MB)",
                sum(i.pss for i in infos) / mb,
                rep,
            )
            out.add("M", variant, "launcher, USS (MB)", launcher.memory_full_info().uss / mb, rep)
            finished(dispatch_id)
    return out
