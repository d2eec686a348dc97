"""Sum up a record file per dispatch, and compare two dispatches node by node.

The file is read one line at a time. Only the records of the dispatches a report
shows are kept, one entry per node: memory grows with the number of nodes in the
report, never with the number of lines in the file. When a node has more than one
record in a dispatch (a task run again by hand with the same ids), the last
record in the file is the one reported, and :attr:`Collected.repeated` counts
the records it replaced.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from timing_report.records_reader import NodeRun, ReadCounts, iter_records


@dataclass
class Totals:
    """Sums over a dispatch's nodes; wall time only if every node recorded it."""

    nodes: int
    cpu_seconds: float
    wall_seconds: float | None
    failed: int
    cancelled: int

    @property
    def cpu_per_wall(self) -> float | None:
        return ratio(self.cpu_seconds, self.wall_seconds)


@dataclass
class DispatchRuns:
    """The last record of each node of one dispatch, by node id."""

    dispatch_id: str
    nodes: dict[int, NodeRun] = field(default_factory=dict)

    def sorted_runs(self) -> list[NodeRun]:
        return [self.nodes[node_id] for node_id in sorted(self.nodes)]

    @property
    def started_at(self) -> float | None:
        """When its first recorded task started (JSON Lines records only)."""
        times = [run.started_at for run in self.nodes.values() if run.started_at is not None]
        return min(times, default=None)

    @property
    def has_wall_time(self) -> bool:
        return any(run.wall_seconds is not None for run in self.nodes.values())

    @property
    def totals(self) -> Totals:
        runs = self.nodes.values()
        walls = [run.wall_seconds for run in runs]
        return Totals(
            nodes=len(runs),
            cpu_seconds=sum(run.cpu_seconds for run in runs),
            wall_seconds=None if None in walls else sum(walls),
            failed=sum(run.status == "FAILED" for run in runs),
            cancelled=sum(run.status == "CANCELLED" for run in runs),
        )


@dataclass
class Collected:
    """The dispatches a read kept, in the order their first record appears."""

    path: str
    dispatches: dict[str, DispatchRuns]
    counts: ReadCounts
    repeated: int = 0


def collect(path: str | os.PathLike, keep: Callable[[str], bool] | None = None) -> Collected:
    """Read ``path`` line by line, keeping the records of dispatches ``keep`` accepts.

    Raises:
        OSError: If ``path`` cannot be opened or read.
    """
    dispatches: dict[str, DispatchRuns] = {}
    counts = ReadCounts()
    # What a read builds holds no reference cycles, so the cycle collector has nothing to
    # find; paused, it no longer rescans every kept record (a third of the time at 1M nodes).
    collector_was_enabled = gc.isenabled()
    gc.disable()
    try:
        repeated = _read_into(dispatches, counts, path, keep)
    finally:
        if collector_was_enabled:
            gc.enable()
    return Collected(os.fspath(path), dispatches, counts, repeated)


def _read_into(
    dispatches: dict[str, DispatchRuns],
    counts: ReadCounts,
    path: str | os.PathLike,
    keep: Callable[[str], bool] | None,
) -> int:
    """Add the kept records of ``path`` to ``dispatches``; return how many replaced one."""
    repeated = 0
    with open(path, encoding="utf-8", errors="replace") as lines:
        for dispatch_id, run in iter_records(lines, counts):
            if keep is not None and not keep(dispatch_id):
                continue
            dispatch = dispatches.get(dispatch_id)
            if dispatch is None:
                dispatch = dispatches[dispatch_id] = DispatchRuns(dispatch_id)
            repeated += run.node_id in dispatch.nodes
            dispatch.nodes[run.node_id] = run
    return repeated


class UnknownDispatchError(LookupError):
    """A dispatch id, or prefix, that matches no dispatch, or more than one, in the file."""


def find_dispatch(collected: Collected, wanted: str) -> DispatchRuns:
    """Return the dispatch whose id is ``wanted``, or the only one it is a prefix of."""
    if wanted in collected.dispatches:
        return collected.dispatches[wanted]
    matches = [d for d in collected.dispatches if d.startswith(wanted)]
    if len(matches) == 1:
        return collected.dispatches[matches[0]]
    if matches:
        raise UnknownDispatchError(
            f"dispatch id {wanted!r} is ambiguous in {collected.path}: it starts "
            f"{', '.join(sorted(matches))}. Give more of the id."
        )
    raise UnknownDispatchError(
        f"no record of dispatch {wanted!r} in {collected.path}. Run "
        f"'timing-executor report {collected.path}' to see the dispatches it holds."
    )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Return ``numerator / denominator``, or ``None`` if either is missing or it is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def difference(a: float | None, b: float | None) -> float | None:
    """Return ``b - a``, or ``None`` if either is missing."""
    return None if a is None or b is None else b - a


@dataclass
class NodeComparison:
    """One node in two dispatches: ``a`` and ``b`` are ``None`` where it has no record."""

    node_id: int
    a: NodeRun | None
    b: NodeRun | None

    @property
    def node_name(self) -> str | None:
        names = dict.fromkeys(r.node_name for r in (self.a, self.b) if r and r.node_name)
        return " / ".join(names) or None

    @property
    def status(self) -> str:
        a, b = (run.status if run else "-" for run in (self.a, self.b))
        return a if a == b else f"{a} -> {b}"

    def cpu(self) -> tuple[float | None, float | None]:
        return (self.a and self.a.cpu_seconds, self.b and self.b.cpu_seconds)

    def wall(self) -> tuple[float | None, float | None]:
        return (self.a and self.a.wall_seconds, self.b and self.b.wall_seconds)


def compare(a: DispatchRuns, b: DispatchRuns) -> list[NodeComparison]:
    """Pair the nodes of ``a`` and ``b`` by node id, in node id order."""
    node_ids = sorted(a.nodes.keys() | b.nodes.keys())
    return [NodeComparison(n, a.nodes.get(n), b.nodes.get(n)) for n in node_ids]
