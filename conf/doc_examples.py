"""Run the docs' example scripts (docs_src/) as ``python SCRIPT ARGS`` would.

The Sphinx doctest build imports this after it has pointed the process at a
running, isolated Covalent server. A script runs in this process, as ``__main__``,
with its arguments in ``sys.argv`` and a fresh, empty working folder: a new Python
would first spend about two seconds of CPU time importing Covalent, and the build is
short of CPU time. ``tests/browser`` runs ``workflow.py`` in a new Python, as a
reader does.
"""

import io
import os
import runpy
import sys
import tempfile
from contextlib import nullcontext, redirect_stderr, redirect_stdout
from functools import partial
from pathlib import Path

DOCS_SRC = Path(__file__).resolve().parents[1] / "docs_src"


def run_script(script: str, *args: str, folder: Path | None = None) -> str:
    """Run ``docs_src/<script> ARGS`` in ``folder`` (a new empty one if None) and
    return what it printed; fail if it exits with an error or writes to stderr."""
    path = DOCS_SRC / script
    new_folder = partial(tempfile.TemporaryDirectory, prefix="docs-example-")
    with nullcontext(folder) if folder else new_folder() as working_folder:
        where, argv = Path.cwd(), sys.argv
        output, errors = io.StringIO(), io.StringIO()
        os.chdir(working_folder)
        sys.argv = [str(path), *args]
        try:
            with redirect_stdout(output), redirect_stderr(errors):
                runpy.run_path(str(path), run_name="__main__")
        except SystemExit as exit:
            if exit.code not in (None, 0):
                raise RuntimeError(f"python {script} exited {exit.code}") from exit
        finally:
            os.chdir(where)
            sys.argv = argv
    if errors.getvalue():
        raise RuntimeError(f"python {script} wrote to stderr:\n{errors.getvalue()}")
    return output.getvalue()


def run_example(script: str) -> None:
    """Run ``docs_src/<script>`` in a new, empty folder and print its output."""
    print(run_script(script), end="")
