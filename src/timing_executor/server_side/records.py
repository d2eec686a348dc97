"""The records, appended on the server: the default file, checking the path and
format, the ids in ``task_metadata``, and one line per task in one ``write``."""

# --8<-- [start:records]
import io
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from covalent._shared_files.logger import app_log

#: Where records go unless ``timing_filepath`` says otherwise:
#: ``~/.cache/covalent/timing.log`` of the server's user, or
#: ``$XDG_CACHE_HOME/covalent/timing.log`` when that variable is set.
#:
#: :meta hide-value:
DEFAULT_TIMING_FILEPATH = str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "covalent"
    / "timing.log"
)


RECORD_FORMATS = ("text", "jsonl")


def resolve_timing_filepath(timing_filepath: str | os.PathLike) -> str:
    """Return the absolute path records go to, after checking it can be written.

    An existing directory means the file ``timing.log`` inside it.
    """
    if not str(timing_filepath):
        raise ValueError(
            "timing_filepath '' is empty: pass a file or directory path."
        )
    path = Path(timing_filepath).expanduser().resolve()
    if path.is_dir():
        path = path / "timing.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    except OSError as error:
        raise ValueError(
            f"timing_filepath {str(timing_filepath)!r} cannot be written: "
            f"{error.strerror} ({path}). "
            "Pass a file, or a directory, that you can write to."
        ) from error
    return str(path)


def check_record_format(record_format: str) -> str:
    """Return ``record_format`` if it is one of :data:`RECORD_FORMATS`."""
    if record_format not in RECORD_FORMATS:
        raise ValueError(
            f"record_format {record_format!r} is not supported: "
            f"use one of {RECORD_FORMATS}."
        )
    return record_format


def task_ids(task_metadata: dict) -> tuple[str, int]:
    """Return the dispatch and node ids that Covalent puts in ``task_metadata``."""
    missing = [k for k in ("dispatch_id", "node_id") if k not in task_metadata]
    if missing:
        raise ValueError(
            f"task_metadata has no {' or '.join(map(repr, missing))} "
            f"(its keys: {sorted(task_metadata)}). Covalent passes both; when "
            "calling run() yourself, pass them too, e.g. "
            "{'dispatch_id': 'test', 'node_id': 0}."
        )
    return task_metadata["dispatch_id"], task_metadata["node_id"]


def task_name(function: Callable) -> str:
    """Return the electron's name.

    Covalent hands executors ``functools.partial(wrapper_fn, serialized_function,
    ...)``; the serialized function keeps the original name in ``attrs``.
    """
    wrapped = getattr(function, "args", None) or [None]
    attrs = getattr(wrapped[0], "attrs", None)
    if isinstance(attrs, dict) and "name" in attrs:
        return attrs["name"]
    return getattr(function, "__name__", type(function).__name__)


@dataclass(frozen=True)
class TaskRecord:
    """What one task's record holds."""

    dispatch_id: str
    node_id: int
    node_name: str
    started_at: float  #: Unix time the task started.
    cpu_seconds: float
    wall_seconds: float
    status: str = "COMPLETED"  #: Or ``"FAILED"`` or ``"CANCELLED"``.
    #: Why it failed, such as ``"ValueError: message"`` or ``"exit code 4: ..."``.
    error: str | None = None

    def to_line(self, record_format: str = "text") -> str:
        """Return the record as one line, newline included."""
        if record_format == "jsonl":
            return json.dumps(asdict(self)) + "\n"
        who = f"Node {self.node_id} in dispatch {self.dispatch_id}"
        cpu = f"{self.cpu_seconds:.6f}s of CPU time"
        if self.status == "CANCELLED":
            return f"{who} was cancelled after {cpu}.\n"
        if self.status == "FAILED":
            reason = (self.error or "unknown").split(":", 1)[0]
            return f"{who} failed ({reason}) after {cpu}.\n"
        return f"{who} took {cpu}.\n"


def append_line(path: str, line: str) -> None:
    """Append ``line`` in one ``write``, so concurrent writers never interleave."""
    data = line.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(f"only {written} of {len(data)} bytes reached {path}")


def append_record(path: str, line: str, stderr: io.TextIOBase | None) -> None:
    """Append a record; if that fails, put it and the reason in the task's stderr.

    A record that cannot be written never costs the task its result.
    """
    try:
        append_line(path, line)
    except OSError as error:
        message = (
            f"timing-executor could not append this task's record to {path}: "
            f"{error.strerror or error}. The record:\n{line}"
        )
        print(message, end="", file=stderr or sys.stderr)
        app_log.warning(message)


# --8<-- [end:records]
