"""Turn what the tasks and the record files report into the benchmark's figures."""

import re
import statistics
from collections.abc import Iterable, Sequence

import psutil

from timing_executor.task_side.boot import LAUNCHER_BOOT

_RECORD = re.compile(r"Node (\d+) in dispatch (\S+) took ([0-9.e+-]+)s of CPU time\.")

Interval = tuple[float, float]


def recorded_cpu_seconds(log_text: str, dispatch_id: str) -> dict[int, float]:
    """Map node id to the CPU seconds the text records of one dispatch claim.

    Works for this package's text records and for the naive executor's, which
    have no newline between them.
    """
    return {
        int(node): float(seconds)
        for node, dispatch, seconds in _RECORD.findall(log_text)
        if dispatch == dispatch_id
    }


def start_gap(intervals: Sequence[Interval]) -> float:
    """Seconds from the first task's start to the last task's start."""
    starts = [start for start, _ in intervals]
    return max(starts) - min(starts)


def span(intervals: Sequence[Interval]) -> float:
    """Seconds from the first start to the last end."""
    return max(end for _, end in intervals) - min(start for start, _ in intervals)


def running_over_time(intervals: Sequence[Interval]) -> list[tuple[float, int]]:
    """Return (seconds since the first start, tasks running) after every start and end."""
    origin = min(start for start, _ in intervals)
    events = sorted(
        [(s - origin, 1) for s, _ in intervals] + [(e - origin, -1) for _, e in intervals]
    )
    running, steps = 0, []
    for moment, change in events:
        running += change
        steps.append((moment, running))
    return steps


def most_at_once(intervals: Sequence[Interval]) -> int:
    """The largest number of tasks that ran at the same moment."""
    return max(running for _, running in running_over_time(intervals))


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def launcher_and_tasks(server_port: int) -> tuple[psutil.Process, list[psutil.Process]]:
    """The task launcher of the server listening on ``server_port``, and the processes
    of its tasks (each task's supervisor and the task's own process)."""
    for process in psutil.process_iter(["cmdline"]):
        if LAUNCHER_BOOT not in (process.info["cmdline"] or []):
            continue
        parent = process.parent()
        listening = parent.net_connections(kind="tcp") if parent else []
        if any(c.status == "LISTEN" and c.laddr.port == server_port for c in listening):
            return process, process.children(recursive=True)
    raise LookupError(f"no task launcher runs for the server on port {server_port}")
