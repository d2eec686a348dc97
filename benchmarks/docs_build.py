"""E: how long ``tox -e docs`` takes, from nothing (cold) and again (warm).

The runs use a tox work folder of their own, so the docs env other people use
is left alone; the cold run includes creating that env.
"""

import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.cases import CaseResult

ROOT = Path(__file__).resolve().parent.parent


def docs_env_exists(tox_ini: Path = ROOT / "tox.ini") -> bool:
    return "[testenv:docs]" in tox_ini.read_text()


#: tox's summary line, e.g. ``docs: OK (71.1=setup[2.1]+cmd[30.2,25.3,13.5] seconds)``.
_TOX_SUMMARY = re.compile(r"setup\[([0-9.]+)\]\+cmd\[([0-9.,]+)\]")


def _tox_docs(workdir: Path, user_env: dict) -> tuple[float, list[float]]:
    """Run ``tox -e docs``; return its wall time and the seconds each command took."""
    env = {k: v for k, v in user_env.items() if not k.startswith("TOX_")}
    env.pop("VIRTUAL_ENV", None)
    command = [sys.executable, "-m", "tox", "-e", "docs", "--workdir", str(workdir)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr}")
    summary = _TOX_SUMMARY.search(done.stdout)
    commands = [float(x) for x in summary.group(2).split(",")] if summary else []
    return elapsed, commands


def docs_build(repetitions: int, workdir: Path, user_env: dict) -> CaseResult:
    """Time one cold and ``repetitions`` warm ``tox -e docs`` runs.

    ``user_env`` is the environment the benchmark started with (before isolating
    itself), so pip finds the same package index as for any other tox run.
    """
    out = CaseResult()
    tox_workdir = workdir / "tox"
    cold, _ = _tox_docs(tox_workdir, user_env)
    out.add("E", "tox -e docs", "cold, env created (s)", cold, 0)
    for rep in range(repetitions):
        warm, commands = _tox_docs(tox_workdir, user_env)
        out.add("E", "tox -e docs", "warm (s)", warm, rep)
        for number, seconds in enumerate(commands, start=1):
            out.add("E", "tox -e docs", f"warm, command {number} of tox.ini (s)", seconds, rep)
    return out
