"""A Covalent executor plugin that records how much CPU time each task used.

``TimingExecutor`` runs each task in the thread Covalent calls ``run()`` from and
appends one record per task to a file, by default the sentence::

    Node 1 in dispatch 5b8e0c0e-... took 0.000012s of CPU time.

The CPU time is the task's own. ``time.thread_time()`` counts only the thread
the task runs in; ``time.process_time()`` counts every thread of the Covalent
server, so while several tasks run at once it adds their work to each record.
"""

# --8<-- [start:imports]
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covalent.executor.base import BaseExecutor

# --8<-- [end:imports]


# --8<-- [start:helpers]
#: Where records go unless ``timing_filepath`` says otherwise.
DEFAULT_TIMING_FILEPATH = str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covalent" / "timing.log"
)

RECORD_FORMATS = ("text", "jsonl")


def resolve_timing_filepath(timing_filepath: str | os.PathLike) -> str:
    """Return the absolute path records go to, after checking it can be written.

    An existing directory means the file ``timing.log`` inside it.
    """
    if not str(timing_filepath):
        raise ValueError("timing_filepath '' is empty: pass a file or directory path.")
    path = Path(timing_filepath).expanduser().resolve()
    if path.is_dir():
        path = path / "timing.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    except OSError as error:
        raise ValueError(
            f"timing_filepath {str(timing_filepath)!r} cannot be written: "
            f"{error.strerror} ({path}). Pass a file, or a directory, that you can write to."
        ) from error
    return str(path)


def check_record_format(record_format: str) -> str:
    """Return ``record_format`` if it is one of :data:`RECORD_FORMATS`."""
    if record_format not in RECORD_FORMATS:
        raise ValueError(
            f"record_format {record_format!r} is not supported: use one of {RECORD_FORMATS}."
        )
    return record_format


def task_ids(task_metadata: dict) -> tuple[str, int]:
    """Return the dispatch id and node id that Covalent puts in ``task_metadata``."""
    missing = [key for key in ("dispatch_id", "node_id") if key not in task_metadata]
    if missing:
        raise ValueError(
            f"task_metadata has no {' or '.join(map(repr, missing))} "
            f"(its keys: {sorted(task_metadata)}). Covalent passes both; when calling "
            "run() yourself, pass them too, e.g. {'dispatch_id': 'test', 'node_id': 0}."
        )
    return task_metadata["dispatch_id"], task_metadata["node_id"]


def task_name(function: Callable) -> str:
    """Return the electron's name.

    Covalent hands executors ``functools.partial(wrapper_fn, serialized_function, ...)``;
    the serialized function keeps the original name in ``attrs``.
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
    error: str | None = None  #: ``"ValueError: message"`` when the task raised.

    @property
    def status(self) -> str:
        return "COMPLETED" if self.error is None else "FAILED"

    def to_line(self, record_format: str = "text") -> str:
        """Return the record as one line, newline included."""
        if record_format == "jsonl":
            return json.dumps({**vars(self), "status": self.status}) + "\n"
        who = f"Node {self.node_id} in dispatch {self.dispatch_id}"
        if self.error is None:
            return f"{who} took {self.cpu_seconds:.6f}s of CPU time.\n"
        error_type = self.error.split(":", 1)[0]
        return f"{who} failed ({error_type}) after {self.cpu_seconds:.6f}s of CPU time.\n"


def append_line(path: str, line: str) -> None:
    """Append ``line`` with a single ``write``, so concurrent writers never interleave."""
    data = line.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(f"only {written} of {len(data)} bytes of a record reached {path}")


def run_and_record(
    function: Callable,
    args: list,
    kwargs: dict,
    task_metadata: dict,
    timing_filepath: str,
    record_format: str = "text",
) -> Any:
    """Call ``function(*args, **kwargs)`` in this thread and append its record.

    A task that raises is recorded as failed, then its exception propagates.
    """
    dispatch_id, node_id = task_ids(task_metadata)
    error = None
    started_at = time.time()
    wall_start = time.perf_counter()
    cpu_start = time.thread_time()
    try:
        return function(*args, **kwargs)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record = TaskRecord(
            dispatch_id=dispatch_id,
            node_id=node_id,
            node_name=task_name(function),
            started_at=started_at,
            cpu_seconds=time.thread_time() - cpu_start,
            wall_seconds=time.perf_counter() - wall_start,
            error=error,
        )
        append_line(timing_filepath, record.to_line(record_format))


# --8<-- [end:helpers]

# --8<-- [start:plugin-attributes]
executor_plugin_name = "TimingExecutor"

#: The values the Covalent server builds the executor from (see ``covalent.conf``).
_EXECUTOR_PLUGIN_DEFAULTS = {
    "timing_filepath": DEFAULT_TIMING_FILEPATH,
    "record_format": "text",
}
# --8<-- [end:plugin-attributes]


# --8<-- [start:executor]
class TimingExecutor(BaseExecutor):
    """Run each task in Covalent's worker thread and record its CPU time.

    Args:
        timing_filepath: File the records are appended to; an existing directory
            means ``timing.log`` inside it. Defaults to :data:`DEFAULT_TIMING_FILEPATH`.
        record_format: ``"text"`` for one sentence per task, ``"jsonl"`` for one
            JSON object per task (with wall time, status and node name).
        **kwargs: Options of :class:`covalent.executor.base.BaseExecutor`, such as
            ``log_stdout`` or ``time_limit``.

    Raises:
        ValueError: If ``timing_filepath`` cannot be written or ``record_format``
            is unknown.
    """

    def __init__(
        self,
        timing_filepath: str | os.PathLike = DEFAULT_TIMING_FILEPATH,
        record_format: str = "text",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.timing_filepath = resolve_timing_filepath(timing_filepath)
        self.record_format = check_record_format(record_format)

    def run(self, function: Callable, args: list, kwargs: dict, task_metadata: dict) -> Any:
        """Run the task in this thread, record its CPU time and return its result."""
        return run_and_record(
            function, args, kwargs, task_metadata, self.timing_filepath, self.record_format
        )


# --8<-- [end:executor]
