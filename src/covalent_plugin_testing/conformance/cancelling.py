"""Cancel a running task and watch it: its heartbeat must stop and its process end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from covalent_plugin_testing.conformance import workflows
from covalent_plugin_testing.conformance.dispatching import (
    CaseFailure,
    finish,
    wait_until,
)


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _beat_stopped(beat: Path, quiet: float = 0.5) -> bool:
    """Whether ``beat`` has not changed for ``quiet`` seconds (it changes every 50 ms
    while the task runs)."""
    before = beat.read_text() if beat.exists() else None
    time.sleep(quiet)
    return (beat.read_text() if beat.exists() else None) == before


def cancel_observed(conformance: Any) -> dict:
    """Dispatch a task with a heartbeat (and one that needs it), cancel it once it
    beats, and say what happened within ``cancel_limit``: a problem (or None), the
    statuses, whether the second task ran."""
    import covalent as ct

    folder = conformance.folder / "heartbeat"
    folder.mkdir()
    limit = conformance.cancel_limit
    hold = conformance.timeout + limit  # the task ends itself at the latest then
    dispatch_id = ct.dispatch(workflows.cancelled(conformance.executor, str(folder), hold))()
    pid_file, beat, release = folder / "pid", folder / "beat", folder / "release"
    try:
        if not wait_until(beat.exists, conformance.timeout):
            raise CaseFailure(f"the task did not start within {conformance.timeout:.0f} s")
        pid = int(pid_file.read_text())
        called = time.monotonic()
        ct.cancel(dispatch_id)
        stopped = wait_until(lambda: _beat_stopped(beat), limit, step=0)
        gone = stopped and wait_until(
            lambda: process_gone(pid), limit - (time.monotonic() - called)
        )
        elapsed = time.monotonic() - called
        problem = None
        if not stopped:
            problem = f"the task went on running {limit:.0f} s after ct.cancel"
        elif not gone:
            problem = (
                f"the task stopped, but its process (pid {pid}) still ran {limit:.0f} s "
                "after ct.cancel"
            )
    finally:
        release.touch()  # a task cancel did not stop ends now
    done = finish(dispatch_id, conformance.timeout, conformance.server.url)
    return {
        "problem": problem,
        "seconds": elapsed,
        "status": str(done.result.status),
        "beat_status": str(done.node("heartbeat")["status"]),
        "after_status": str(done.node("after")["status"]),
        "after_ran": (folder / "after-ran").exists(),
    }
