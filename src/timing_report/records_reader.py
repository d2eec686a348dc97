"""Read timing records back, one line at a time, in either record format.

A record file may hold the default sentences (``record_format="text"``), JSON
Lines (``record_format="jsonl"``), or both mixed. Any other line is counted as
skipped, never an error, so a stray or half-written line does not stop a report.
"""

import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: The default record (completed, failed or cancelled), as ``TaskRecord.to_line("text")``
#: writes it.
TEXT_RECORD = re.compile(
    r"Node (?P<node_id>\d+) in dispatch (?P<dispatch_id>\S+) "
    r"(?:took|failed \((?P<error_type>[^()]*)\) after|was (?P<cancelled>cancelled) after) "
    r"(?P<cpu_seconds>\d+\.\d+)s of CPU time\."
)
STATUSES = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass(slots=True)
class NodeRun:
    """One task's record, without its dispatch id (the reader's caller keys by it).

    A text record has no node name, start time or wall time; those are ``None``.
    """

    node_id: int
    cpu_seconds: float
    status: str  #: ``"COMPLETED"``, ``"FAILED"`` or ``"CANCELLED"``.
    #: ``"ValueError: message"`` (JSON) or ``"ValueError"``, ``"exit code 4"`` (text).
    error: str | None = None
    node_name: str | None = None
    started_at: float | None = None  #: Unix time the task started.
    wall_seconds: float | None = None


@dataclass
class ReadCounts:
    """What a read skipped: lines that were not records, and the first one's number."""

    skipped: int = 0
    first_skipped_line: int | None = None

    def skip(self, line_number: int) -> None:
        self.skipped += 1
        if self.first_skipped_line is None:
            self.first_skipped_line = line_number


def parse_line(line: str) -> tuple[str, NodeRun] | None:
    """Return ``(dispatch_id, run)`` for a record line, or ``None`` for any other line."""
    line = line.strip()
    if line.startswith("{"):
        return _parse_json(line)
    match = TEXT_RECORD.fullmatch(line)
    if match is None:
        return None
    error_type = match["error_type"]
    status = "CANCELLED" if match["cancelled"] else "COMPLETED"
    run = NodeRun(
        node_id=int(match["node_id"]),
        cpu_seconds=float(match["cpu_seconds"]),
        status=status if error_type is None else "FAILED",
        error=error_type,
    )
    return match["dispatch_id"], run


def iter_records(lines: Iterable[str], counts: ReadCounts) -> Iterator[tuple[str, NodeRun]]:
    """Yield ``(dispatch_id, run)`` for each record line; count the other non-blank lines."""
    for line_number, line in enumerate(lines, start=1):
        parsed = parse_line(line)
        if parsed is not None:
            yield parsed
        elif line.strip():
            counts.skip(line_number)


def _parse_json(line: str) -> tuple[str, NodeRun] | None:
    try:
        fields = json.loads(line)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    dispatch_id = fields.get("dispatch_id")
    node_id = fields.get("node_id")
    cpu_seconds = _seconds(fields.get("cpu_seconds"))
    status = fields.get("status")
    if (
        not isinstance(dispatch_id, str)
        or not dispatch_id
        or type(node_id) is not int
        or node_id < 0
        or cpu_seconds is None
        or status not in STATUSES
    ):
        return None
    node_name = fields.get("node_name")
    error = fields.get("error")
    run = NodeRun(
        node_id=node_id,
        cpu_seconds=cpu_seconds,
        status=status,
        error=error if isinstance(error, str) else None,
        node_name=sys.intern(node_name) if isinstance(node_name, str) else None,
        started_at=_seconds(fields.get("started_at")),
        wall_seconds=_seconds(fields.get("wall_seconds")),
    )
    return dispatch_id, run


def _seconds(value: object) -> float | None:
    """Return ``value`` as a float if it is a finite, non-negative number."""
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)
