"""The benchmark's outputs: the machine, the table of medians and the chart."""

import os
import platform
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

from benchmarks import measures
from benchmarks.cases import CaseResult, Sample


def machine() -> str:
    """One line naming the cores, CPU, Python and Covalent this run used."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Covalent {version('covalent')}, "
        f"load average at the start {load}"
    )


def _format(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def table(samples: list[Sample]) -> str:
    """A Markdown table: one row per case, variant and metric, median and every run."""
    runs = defaultdict(list)
    for sample in samples:
        runs[(sample.case, sample.variant, sample.metric)].append(sample.value)
    lines = [
        "| case | variant | metric | median | runs |",
        "|---|---|---|---:|---|",
    ]
    for (case, variant, metric), values in runs.items():
        every = ", ".join(_format(v) for v in values)
        lines.append(
            f"| {case} | {variant} | {metric} | {_format(measures.median(values))} | {every} |"
        )
    return "\n".join(lines)


def _tasks_over_time(axes, intervals_by_variant: dict) -> None:
    for variant, intervals in intervals_by_variant.items():
        steps = measures.running_over_time(intervals)
        axes.step(
            [0.0] + [t for t, _ in steps], [0] + [n for _, n in steps], where="post", label=variant
        )
    axes.set_xlabel("seconds since the first task started")
    axes.set_ylabel("tasks running (last run)")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.legend()


def chart(
    accuracy: CaseResult,
    concurrency: CaseResult,
    ways: CaseResult,
    path: Path,
    cluster: CaseResult | None = None,
) -> None:
    """Draw A (recorded / true CPU time), B (tasks running over time), I (the cost
    of starting a task, per way to run it apart) and, if measured, G (tasks running
    on a Dask cluster of 1 and of 2 workers) side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 4 if cluster and cluster.intervals else 3
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.2))
    left, right, third = axes[:3]
    ratios = defaultdict(lambda: defaultdict(list))
    for sample in accuracy.samples:
        ratios[sample.metric.rsplit(", ", 1)[-1]][sample.variant].append(sample.value)
    names = list(ratios["median task"])
    for offset, which in ((-0.2, "median task"), (0.2, "worst task")):
        heights = [measures.median(ratios[which][name] or [0.0]) for name in names]
        left.bar([i + offset for i in range(len(names))], heights, width=0.4, label=which)
    left.set_xticks(range(len(names)), names)
    left.axhline(1.0, color="black", linewidth=1, linestyle="--")
    left.set_title("A: recorded CPU time / true CPU time\n(4 concurrent tasks, median of runs)")
    left.set_ylabel("ratio (1.0 is exact)")
    left.legend()
    _tasks_over_time(right, concurrency.intervals)
    right.set_title(f"B: {len(next(iter(concurrency.intervals.values()), []))} tasks of sleep(1)")
    costs = defaultdict(list)
    for sample in ways.samples:
        if sample.metric.startswith("start a trivial task"):
            costs[sample.variant].append(sample.value)
    third.bar(list(costs), [measures.median(values) for values in costs.values()])
    third.set_yscale("log")
    third.set_title("I: start a trivial task and see it end\n(median of runs)")
    third.set_ylabel("milliseconds (log scale)")
    if panels == 4:
        _tasks_over_time(axes[3], cluster.intervals)
        count = len(next(iter(cluster.intervals.values())))
        axes[3].set_title(f"G: {count} tasks of sleep(2) on Dask workers of 2 threads")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


#: The summary's rows: (what, case, metric, variant per column). Columns: the guide's
#: original executor, TimingExecutor, AsyncTimingExecutor, Covalent's local executor.
SUMMARY_ROWS = [
    (
        "recorded / true CPU time, worst of 4 tasks at once (goal: 1.00)",
        "A",
        "recorded / true, worst task",
        ("naive", "sync", "async", None),
    ),
    (
        "20 tasks of `sleep(1)`: seconds from the first start to the last end",
        "B",
        "span (s)",
        (None, "sync", "async", "local"),
    ),
    (
        "an unrelated `local` task, started later than on an idle server (s)",
        "C",
        "delay beyond idle (s)",
        (None, "sync", "async", None),
    ),
    (
        "300 trivial tasks, dispatch to done, / `local`'s time",
        "D",
        "time / local time",
        (None, "sync", "async", "local"),
    ),
    (
        "what running a task apart adds to it (ms)",
        "D run()",
        "added by running the task apart (ms)",
        (None, "sync", "async", None),
    ),
    (
        "20 tasks sleeping at once: their processes' memory, USS summed (MB)",
        "M",
        "task processes, USS summed (MB)",
        (None, None, "async", None),
    ),
]


#: The rows of case I, measured without a server: the ways the executors run a task,
#: not the executors. Columns: a thread, a reused process pool, a new interpreter per
#: task, multiprocessing's fork server, TimingExecutor.run() (its launcher).
ISOLATION_SUMMARY_ROWS = [
    (
        "start a trivial task and see it end (ms)",
        "I",
        "start a trivial task and see it end (ms)",
        ("thread", "pool", "spawn", "forkserver", "launcher"),
    ),
    (
        "one sleeping task's process, USS (MB)",
        "I",
        "one sleeping task's process, USS (MB)",
        ("thread", "pool", "spawn", "forkserver", "launcher"),
    ),
    (
        "of 3 tasks, how many one task's `os._exit()` also ends",
        "I",
        "of 3 tasks, failed by a 4th's os._exit()",
        ("thread", "pool", "spawn", "forkserver", "launcher"),
    ),
]


#: The Dask summary's rows. Columns: DaskTimingExecutor measuring process_time(),
#: DaskTimingExecutor, Covalent's DaskExecutor.
DASK_SUMMARY_ROWS = [
    (
        "recorded / true CPU time, worst of 4 tasks at once on 2 workers x 2 threads",
        "G",
        "recorded / true, worst task",
        ("dask_naive", "dask_timing", None),
    ),
    (
        "60 trivial tasks, dispatch to done, / `DaskExecutor`'s time",
        "G",
        "time / dask time",
        (None, "dask_timing", "dask"),
    ),
    *(
        (
            f"40 tasks of `sleep({nap})` on {workers} of 2 threads: span (s)",
            "G",
            f"40 x sleep({nap}), span (s)",
            (None, f"dask_timing, {workers}", None),
        )
        for nap in (0.5, 2.0)
        for workers in ("1 worker", "2 workers")
    ),
]


#: The SSH summary's rows (case R). Columns: SSHTimingExecutor, covalent-ssh-plugin's
#: SSHExecutor, Covalent's local executor. Taken on one sshd on the same machine.
SSH_SUMMARY_ROWS = [
    (
        "100 trivial tasks, dispatch to done (s)",
        "R",
        "100 trivial tasks, dispatch to done (s)",
        ("ssh_timing", "ssh", "local"),
    ),
    (
        "100 trivial tasks, / `SSHExecutor`'s time (goal: <= 0.5)",
        "R",
        "100 trivial tasks, time / ssh time",
        ("ssh_timing", "ssh", "local"),
    ),
    (
        "20 tasks of `sleep(1)` at once, dispatch to done (s)",
        "R",
        "20 x sleep(1), dispatch to done (s)",
        ("ssh_timing", "ssh", "local"),
    ),
    (
        "20 tasks of `sleep(1)` at once, / `SSHExecutor`'s time (goal: <= 0.5)",
        "R",
        "20 x sleep(1), time / ssh time",
        ("ssh_timing", "ssh", "local"),
    ),
    (
        "recorded / true CPU time, worst of 4 tasks at once (goal: 1.00 +/- 0.03)",
        "R",
        "recorded / true, worst task",
        ("ssh_timing", None, None),
    ),
    (
        "SSH logins for the 100 trivial tasks",
        "R",
        "SSH logins for the 100 trivial tasks",
        ("ssh_timing", "ssh", None),
    ),
    (
        "of those logins' connections, how many sshd dropped past `MaxStartups 10:30:100`",
        "R",
        "connections the sshd dropped (MaxStartups) for the 100 trivial tasks",
        ("ssh_timing", "ssh", None),
    ),
    (
        "100 trivial tasks on an sshd that drops none (`MaxStartups 1000`), dispatch to done (s)",
        "R",
        "100 trivial tasks, dispatch to done (s)",
        (None, "ssh_unthrottled", None),
    ),
    (
        "20 tasks of `sleep(1)` on an sshd that drops none, dispatch to done (s)",
        "R",
        "20 x sleep(1), dispatch to done (s)",
        (None, "ssh_unthrottled", None),
    ),
    (
        "connects to a host whose key changed",
        "R",
        "connects to a host whose key changed (1: yes)",
        ("ssh_timing", "ssh", None),
    ),
    (
        "the task's stdout reaches the node's result",
        "R",
        "the task's stdout reaches the node's result (1: yes)",
        ("ssh_timing", "ssh", None),
    ),
    (
        "files left in the remote folders after a task that raised",
        "R",
        "files left in the remote folders after a task that raised",
        ("ssh_timing", "ssh", None),
    ),
    (
        "files left in the remote folders after a task that called `os._exit(3)`",
        "R",
        "files left in the remote folders after a task that called os._exit(3)",
        ("ssh_timing", "ssh", None),
    ),
    (
        "the task still runs 5 s after `ct.cancel`",
        "R",
        "the task still runs 5 s after ct.cancel (1: yes)",
        ("ssh_timing", "ssh", None),
    ),
]


#: The Slurm summary's rows (case S). Columns: SlurmTimingExecutor and
#: covalent-slurm-plugin's SlurmExecutor, both submitting over SSH.
SLURM_SUMMARY_ROWS = [
    (
        "20 trivial tasks, dispatch to done (s)",
        "S",
        "20 trivial tasks, dispatch to done (s)",
        ("slurm_timing", "slurm"),
    ),
    (
        "20 trivial tasks, / `SlurmExecutor`'s time",
        "S",
        "20 trivial tasks, time / slurm time",
        ("slurm_timing", "slurm"),
    ),
    (
        "2 CPU-bound tasks at a barrier, dispatch to done (s)",
        "S",
        "2 CPU-bound tasks at a barrier, dispatch to done (s)",
        ("slurm_timing", "slurm"),
    ),
    (
        "2 CPU-bound tasks at a barrier, / `SlurmExecutor`'s time",
        "S",
        "2 CPU-bound tasks at a barrier, time / slurm time",
        ("slurm_timing", "slurm"),
    ),
    (
        "recorded / true CPU time, worst of 2 jobs at once (goal: 1.00 +/- 0.03)",
        "S",
        "recorded / true, worst task",
        ("slurm_timing", None),
    ),
    (
        "seconds from `ct.cancel` to the job gone from `squeue`",
        "S",
        "seconds from ct.cancel to the job gone from squeue",
        ("slurm_timing", None),
    ),
    (
        "the job is still in `squeue` 10 s after `ct.cancel`",
        "S",
        "the job is still in squeue 10 s after ct.cancel (1: yes)",
        ("slurm_timing", "slurm"),
    ),
    (
        "the job's stdout reaches the node's result",
        "S",
        "the task's stdout reaches the node's result (1: yes)",
        ("slurm_timing", "slurm"),
    ),
    (
        "SSH logins for the 20 trivial tasks",
        "S",
        "SSH logins for the 20 trivial tasks",
        ("slurm_timing", "slurm"),
    ),
]


def _cell(metric: str, values: list[float]) -> str:
    """The median of ``values``: yes or no for a metric that says ``(1: yes)``, a
    whole number for counts."""
    if not values:
        return ""
    value = measures.median(values)
    if metric.endswith("(1: yes)"):
        return "yes" if value >= 0.5 else "no"
    if metric.startswith(("SSH logins", "files left", "of 3 tasks", "connection")):
        return f"{value:g}"
    return _format(value)


def _rows(runs: dict, rows: list) -> list[str]:
    lines = []
    for what, case, metric, variants in rows:
        cells = [_cell(metric, runs.get((case, variant, metric), [])) for variant in variants]
        lines.append(f"| {what} ({case}) | " + " | ".join(cells) + " |")
    return lines


def summary(samples: list[Sample]) -> str:
    """Short Markdown tables of the medians a reader needs, one column per executor:
    on the server's machine, then the ways to run a task apart (case I, one column
    per way), on a Dask cluster, over SSH and on Slurm."""
    runs = defaultdict(list)
    for sample in samples:
        runs[(sample.case, sample.variant, sample.metric)].append(sample.value)
    lines = [
        "| | guide's original ([naive](#what-is-compared)) | `TimingExecutor` | "
        "`AsyncTimingExecutor` | Covalent's `local` |",
        "|---|---:|---:|---:|---:|",
        *_rows(runs, SUMMARY_ROWS),
        "",
        "| without a server, ways to run a task apart | in a thread (as the guide's "
        "original) | a reused `ProcessPoolExecutor` (as `local`) | a new interpreter "
        "per task | `multiprocessing`'s fork server | `TimingExecutor.run()` (its "
        "launcher) |",
        "|---|---:|---:|---:|---:|---:|",
        *_rows(runs, ISOLATION_SUMMARY_ROWS),
        "",
        "| on a Dask cluster | measuring `process_time()` | `DaskTimingExecutor` | "
        "Covalent's `DaskExecutor` |",
        "|---|---:|---:|---:|",
        *_rows(runs, DASK_SUMMARY_ROWS),
        "",
        "| over SSH, on one sshd | `SSHTimingExecutor` | covalent-ssh-plugin's "
        "`SSHExecutor` | Covalent's `local` |",
        "|---|---:|---:|---:|",
        *_rows(runs, SSH_SUMMARY_ROWS),
        "",
        "| on Slurm, submitting over SSH | `SlurmTimingExecutor` | covalent-slurm-plugin's "
        "`SlurmExecutor` |",
        "|---|---:|---:|",
        *_rows(runs, SLURM_SUMMARY_ROWS),
    ]
    return "\n".join(lines)
