"""Run the docs' example scripts (docs_src/) the way a reader does: ``python SCRIPT``.

The Sphinx doctest build imports this after it has pointed the process at a
running, isolated Covalent server; the script inherits that environment and runs
in a fresh, empty folder.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

DOCS_SRC = Path(__file__).resolve().parents[1] / "docs_src"
SCRIPT_TIMEOUT_SECONDS = 300


def run_example(script: str) -> None:
    """Run ``docs_src/<script>`` with this interpreter in a new folder; print its output."""
    with tempfile.TemporaryDirectory(prefix="docs-example-") as folder:
        completed = subprocess.run(
            [sys.executable, str(DOCS_SRC / script)],
            cwd=folder,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=SCRIPT_TIMEOUT_SECONDS,
        )
    if completed.returncode:
        raise RuntimeError(f"python {script} exited {completed.returncode}:\n{completed.stderr}")
    print(completed.stdout, end="")
