"""A virtual environment with Covalent and not this package, like a reader's or a
Dask worker machine's: what runs there shows what a plugin needs."""

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
COVALENT_PIN = "covalent==0.240.0"


def covalent_only_python(venv: Path) -> str:
    """Make (or reuse) ``venv`` with only Covalent installed; return its Python."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    constraints = REPOSITORY / "conf" / "constraints.txt"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-c", str(constraints), COVALENT_PIN],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, importlib.util as u;"
            "print(m.version('covalent'), u.find_spec('timing_executor') is None)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=venv,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert check.stdout.split() == ["0.240.0", "True"], check.stdout + check.stderr
    return str(python)


def venv_folder(default: Path) -> Path:
    """``TIMING_EXECUTOR_READER_VENV`` if set (tox keeps it between runs), else ``default``."""
    return Path(os.environ.get("TIMING_EXECUTOR_READER_VENV") or default)


#: A cloudpickle release other than the one Covalent 0.240.0 gets (3.1.x).
OTHER_CLOUDPICKLE = "3.0.0"


def other_cloudpickle(folder: Path) -> Path:
    """Install cloudpickle :data:`OTHER_CLOUDPICKLE` alone into ``folder``; put it
    first on a Python's ``PYTHONPATH`` to give that Python another version."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(folder),
         "--no-deps", f"cloudpickle=={OTHER_CLOUDPICKLE}"],
        check=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PIP_CONSTRAINT": ""},
    )  # fmt: skip
    return folder
