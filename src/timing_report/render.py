"""Write reports as tables (with rich), JSON or CSV.

Tables are for people: one per dispatch, with a totals row, and columns a
dispatch has no data for (node names and wall time of text records) left out.
JSON and CSV are for programs: every field, ``null`` or an empty cell where a
record has no value. CSV has one row per node and no totals row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO

from rich import box
from rich.console import Console
from rich.table import Table

from timing_report.records_reader import NodeRun
from timing_report.report import DispatchRuns, NodeComparison, Totals, difference, ratio

FORMATS = ("table", "json", "csv")
#: Width for tables written to a file or pipe: wide enough that no cell wraps.
PIPE_WIDTH = 1000


def console_for(output: IO[str]) -> Console:
    """A console that uses the terminal's width, or :data:`PIPE_WIDTH` when not a terminal."""
    is_terminal = output.isatty()
    return Console(file=output, width=None if is_terminal else PIPE_WIDTH, highlight=False)


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def signed_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:+.6f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def utc(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# Tables ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Titled:
    """A table and the lines printed above it (a rich title would wrap at the table's width)."""

    heading: str
    table: Table


def dispatch_table(dispatch: DispatchRuns) -> Titled:
    """One row per node and a totals row."""
    started = utc(dispatch.started_at)
    named = any(run.node_name for run in dispatch.nodes.values())
    timed = dispatch.has_wall_time

    def row(first: str, name: str, cpu: float, wall: float | None, status: str) -> list[str]:
        cells = [first] + ([name] if named else []) + [seconds(cpu)]
        if timed:
            cells += [seconds(wall), times(ratio(cpu, wall))]
        return [*cells, status]

    headings = row("Node", "Name", 0.0, None, "Status")
    headings[1 + named : -1] = ["CPU s"] + (["Wall s", "CPU/wall"] if timed else [])
    runs = dispatch.sorted_runs()
    rows = [
        row(str(r.node_id), r.node_name or "-", r.cpu_seconds, r.wall_seconds, r.status)
        for r in runs
    ]
    totals = dispatch.totals
    footer = row(
        "Total", f"{totals.nodes} nodes", totals.cpu_seconds, totals.wall_seconds, _failed(totals)
    )
    heading = f"Dispatch {dispatch.dispatch_id}" + (f", started {started}" if started else "")
    return Titled(heading, _table(headings, rows, footer, text_columns=1 + named))


def comparison_table(a: DispatchRuns, b: DispatchRuns, rows: list[NodeComparison]) -> Titled:
    """One row per node id: each dispatch's times, ``B - A`` and ``B / A``."""
    timed = a.has_wall_time and b.has_wall_time
    measures = ["CPU"] + (["Wall"] if timed else [])
    headings = ["Node", "Name"]
    for measure in measures:
        headings += [f"{measure} s A", f"{measure} s B", "B - A", "B / A"]
    headings.append("Status")

    def cells(pairs: Iterable[tuple[float | None, float | None]]) -> list[str]:
        out = []
        for value_a, value_b in pairs:
            out += [seconds(value_a), seconds(value_b)]
            out += [signed_seconds(difference(value_a, value_b)), times(ratio(value_b, value_a))]
        return out

    body = []
    for node in rows:
        pairs = [node.cpu()] + ([node.wall()] if timed else [])
        body.append([str(node.node_id), node.node_name or "-", *cells(pairs), node.status])
    totals_a, totals_b = a.totals, b.totals
    pairs = [(totals_a.cpu_seconds, totals_b.cpu_seconds)]
    if timed:
        pairs.append((totals_a.wall_seconds, totals_b.wall_seconds))
    footer = ["Total", f"{len(rows)} nodes", *cells(pairs), ""]
    heading = f"A = dispatch {a.dispatch_id}\nB = dispatch {b.dispatch_id}"
    return Titled(heading, _table(headings, body, footer, text_columns=2))


def _table(
    headings: list[str], rows: list[list[str]], footer: list[str], text_columns: int
) -> Table:
    """A borderless table: numbers right-aligned, except the node id column's footer."""
    table = Table(box=box.SIMPLE, show_edge=False, show_footer=True)
    for index, (heading, total) in enumerate(zip(headings, footer, strict=True)):
        numeric = index == 0 or (text_columns <= index < len(headings) - 1)
        table.add_column(heading, footer=total, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*row)
    return table


def _failed(totals: Totals) -> str:
    counts = {"FAILED": totals.failed, "CANCELLED": totals.cancelled}
    not_completed = [f"{count} {status}" for status, count in counts.items() if count]
    return ", ".join(not_completed) or "all COMPLETED"


def print_tables(tables: Iterable[Titled], output: IO[str]) -> None:
    """Print the tables a blank line apart, without the spaces rich pads lines with."""
    console = console_for(output)
    for number, titled in enumerate(tables):
        with console.capture() as captured:
            console.print(titled.table)
        lines = [titled.heading] + [line.rstrip() for line in captured.get().splitlines()]
        output.write(("\n" if number else "") + "\n".join(lines) + "\n")


# JSON -----------------------------------------------------------------------------------


def run_fields(run: NodeRun) -> dict:
    return {
        "node_id": run.node_id,
        "node_name": run.node_name,
        "status": run.status,
        "cpu_seconds": run.cpu_seconds,
        "wall_seconds": run.wall_seconds,
        "cpu_per_wall": ratio(run.cpu_seconds, run.wall_seconds),
        "started_at": run.started_at,
        "error": run.error,
    }


def totals_fields(totals: Totals) -> dict:
    return {
        "nodes": totals.nodes,
        "failed": totals.failed,
        "cancelled": totals.cancelled,
        "cpu_seconds": totals.cpu_seconds,
        "wall_seconds": totals.wall_seconds,
        "cpu_per_wall": totals.cpu_per_wall,
    }


def dispatch_fields(dispatch: DispatchRuns) -> dict:
    return {
        "dispatch_id": dispatch.dispatch_id,
        "started_at": dispatch.started_at,
        "nodes": [run_fields(run) for run in dispatch.sorted_runs()],
        "totals": totals_fields(dispatch.totals),
    }


def comparison_fields(node: NodeComparison) -> dict:
    (cpu_a, cpu_b), (wall_a, wall_b) = node.cpu(), node.wall()
    return {
        "node_id": node.node_id,
        "node_name": node.node_name,
        "a": node.a and run_fields(node.a),
        "b": node.b and run_fields(node.b),
        "cpu_difference": difference(cpu_a, cpu_b),
        "cpu_ratio": ratio(cpu_b, cpu_a),
        "wall_difference": difference(wall_a, wall_b),
        "wall_ratio": ratio(wall_b, wall_a),
    }


def write_json(document: dict, output: IO[str]) -> None:
    json.dump(document, output, indent=2)
    output.write("\n")


# CSV ------------------------------------------------------------------------------------

DISPATCH_COLUMNS = ["dispatch_id", *run_fields(NodeRun(0, 0.0, "COMPLETED"))]
COMPARISON_COLUMNS = [
    "node_id",
    "node_name",
    "status_a",
    "status_b",
    "cpu_seconds_a",
    "cpu_seconds_b",
    "cpu_difference",
    "cpu_ratio",
    "wall_seconds_a",
    "wall_seconds_b",
    "wall_difference",
    "wall_ratio",
]


def write_dispatches_csv(dispatches: Iterable[DispatchRuns], output: IO[str]) -> None:
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(DISPATCH_COLUMNS)
    for dispatch in dispatches:
        for run in dispatch.sorted_runs():
            writer.writerow((dispatch.dispatch_id, *run_fields(run).values()))


def write_comparison_csv(rows: Iterable[NodeComparison], output: IO[str]) -> None:
    writer = csv.DictWriter(output, COMPARISON_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for node in rows:
        fields = comparison_fields(node)
        (cpu_a, cpu_b), (wall_a, wall_b) = node.cpu(), node.wall()
        writer.writerow(
            {
                "node_id": node.node_id,
                "node_name": node.node_name,
                "status_a": node.a and node.a.status,
                "status_b": node.b and node.b.status,
                "cpu_seconds_a": cpu_a,
                "cpu_seconds_b": cpu_b,
                "cpu_difference": fields["cpu_difference"],
                "cpu_ratio": fields["cpu_ratio"],
                "wall_seconds_a": wall_a,
                "wall_seconds_b": wall_b,
                "wall_difference": fields["wall_difference"],
                "wall_ratio": fields["wall_ratio"],
            }
        )
