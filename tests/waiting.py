"""Wait for the processes of tasks: until they start, until they are gone; or for
any condition."""

import time
from collections.abc import Callable
from pathlib import Path


def wait_for_pids(marker_dir: Path, count: int) -> list[int]:
    """Wait until ``count`` tasks wrote their process ids into ``marker_dir``."""
    deadline = time.monotonic() + 60
    while len(list(marker_dir.iterdir())) < count:
        assert time.monotonic() < deadline, "the naps did not start"
        time.sleep(0.05)
    time.sleep(0.1)  # each file is written at once, but let the last write finish
    return [int(path.read_text()) for path in marker_dir.iterdir()]


def wait_until_gone(pids: list[int], limit: float) -> float:
    """Seconds until none of ``pids`` runs any more (fails after ``limit``)."""
    start = time.monotonic()
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() - start < limit, f"still running after {limit} s"
        time.sleep(0.02)
    return time.monotonic() - start


def wait_until(condition: Callable[[], object], limit: float) -> None:
    """Wait until ``condition()`` is true, for at most ``limit`` seconds; the caller
    then asserts what it expects, with what went wrong in its message."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
