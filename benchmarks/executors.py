"""The executors compared, by the short label the tables use."""

from collections.abc import Callable
from pathlib import Path

import covalent  # noqa: F401  (import Covalent before any plugin module)

from benchmarks.plugins.naive_timing import NaiveTimingExecutor
from benchmarks.plugins.naive_to_thread import NaiveToThreadExecutor
from timing_executor.async_timing import AsyncTimingExecutor
from timing_executor.timing import TimingExecutor

#: Folder to point the benchmark server's ``COVALENT_EXECUTOR_DIR`` at.
PLUGIN_DIR = Path(__file__).parent / "plugins"

#: label -> what it is, for the tables.
LABELS = {
    "naive": "the guide's original executor (process_time, sync)",
    "to_thread": "the original measuring inside asyncio.to_thread (async)",
    "sync": "timing_executor TimingExecutor",
    "async": "timing_executor AsyncTimingExecutor",
    "local": "Covalent's built-in local executor",
    "dask": "Covalent's built-in dask executor (cluster server)",
}


#: Builds the executor of a label, appending records to a path.
MakeExecutor = Callable[[str, Path], object]


def make_executor(label: str, log_path: Path, record_format: str = "text"):
    """Return the executor called ``label``; timing executors append to ``log_path``."""
    if label in ("local", "dask"):
        return label
    if label == "naive":
        return NaiveTimingExecutor(log_path)
    if label == "to_thread":
        return NaiveToThreadExecutor(log_path)
    if label == "sync":
        return TimingExecutor(log_path, record_format=record_format)
    if label == "async":
        return AsyncTimingExecutor(log_path, record_format=record_format)
    raise ValueError(f"unknown executor label {label!r}: use one of {list(LABELS)}")
