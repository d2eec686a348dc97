"""Stop the processes the kit starts."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM ``process``, and SIGKILL it if it still runs ``grace`` seconds later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
