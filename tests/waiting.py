"""Wait for the processes of tasks: until they start, until they are gone; or for
any condition. And a task that waits for the test."""

import time
from collections.abc import Callable
from pathlib import Path

import covalent as ct


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


def held_workflow(executor, folder: Path, limit: float = 60) -> Callable:
    """Return ``workflow()``: one task, ``held``, that writes its process id to
    ``folder/started``, holds until the test creates ``folder/release`` (at most
    ``limit`` s), then creates ``folder/ended``; so it is surely still running when
    the test acts on it."""
    started, release, ended = folder / "started", folder / "release", folder / "ended"

    @ct.electron(executor=executor)
    def held():
        import os
        import time

        started.write_text(str(os.getpid()))
        deadline = time.monotonic() + limit
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ended.touch()

    @ct.lattice
    def workflow():
        return held()

    return workflow
