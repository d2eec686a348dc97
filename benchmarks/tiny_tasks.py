"""Tasks for case I: importable by name, and quick to import in a new process."""

import os
import time
from pathlib import Path


def nothing() -> None:
    """The trivial task."""


def nap_and_mark(folder: str, name: str, seconds: float) -> None:
    """Write this process's id to ``folder/name``, sleep, then create ``name.done``."""
    Path(folder, name).write_text(str(os.getpid()))
    time.sleep(seconds)
    Path(folder, f"{name}.done").touch()


def exit_hard() -> None:
    os._exit(4)
