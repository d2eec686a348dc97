"""Run the conformance suite on each executor of the scorecard and write the verdicts.

    python -m tests.scorecard.run                      # what ``tox -e scorecard`` runs
    python -m tests.scorecard.run local timing         # only these rows, the rest kept

Each executor gets a pytest process of its own (its own Covalent server), run as
``tests/scorecard/test_executors.py::<its class>`` with a JUnit XML report, which
gives each case's verdict: passes, or the first line of its failure message. The
rows, with each one's versions, date and wall seconds, go to
``docs/reference/scorecard.json``; the docs page renders it, and its build fails if
the cases there are not the suite's current ones.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCORECARD = ROOT / "docs" / "reference" / "scorecard.json"
MODULE = "tests/scorecard/test_executors.py"
#: The longest one executor's whole suite may take.
EXECUTOR_LIMIT = 1800
#: The longest reason a cell of the table shows.
REASON_CHARACTERS = 240


@dataclass(frozen=True)
class Row:
    """One executor of the scorecard."""

    test_class: str
    what: str  #: The executor, as the table names it.
    package: str  #: The distribution whose version the row gives.
    options: tuple[str, ...] = ()  #: More pytest options for its run.


ROWS = {
    "local": Row("TestLocal", "Covalent's local", "covalent"),
    "dask": Row("TestDask", "Covalent's dask (DaskExecutor)", "covalent"),
    "ssh": Row("TestCovalentSSHPlugin", "SSHExecutor", "covalent-ssh-plugin"),
    "slurm": Row("TestCovalentSlurmPlugin", "SlurmExecutor", "covalent-slurm-plugin"),
    "timing": Row("TestTiming", "TimingExecutor", "timing-executor"),
    "async_timing": Row("TestAsyncTiming", "AsyncTimingExecutor", "timing-executor"),
    "dask_timing": Row("TestDaskTiming", "DaskTimingExecutor", "timing-executor"),
    "ssh_timing": Row("TestSSHTiming", "SSHTimingExecutor", "timing-executor"),
    "slurm_timing": Row("TestSlurmTiming", "SlurmTimingExecutor", "timing-executor"),
    "batch_timing": Row("TestBatchTiming", "BatchTimingExecutor", "timing-executor"),
    "small_timing": Row(
        "TestSmallTiming",
        "the guide's in-thread small_timing",
        "timing-executor",
        ("--covalent-executor-dir", str(ROOT / "docs_src" / "plugins")),
    ),
}


def one_line(message: str) -> str:
    """A case's failure message as a cell: what failed and what a user sees,
    without the exception's module and the pointer to the guide."""
    text = " ".join(message.split())
    if "CaseFailure: " in text:
        text = text.split("CaseFailure: ", 1)[1]
    text = text.split(" The guide explains the fix:", 1)[0]
    text = text.replace(". A user of this executor sees: ", ": ", 1)
    if len(text) > REASON_CHARACTERS:
        text = text[: REASON_CHARACTERS - 1].rstrip() + "…"
    return text


def verdicts(junit_xml: Path) -> dict[str, str]:
    """Each case's verdict in a JUnit XML report: ``passes`` or ``fails: reason``."""
    found = {}
    for case in ElementTree.parse(junit_xml).iter("testcase"):
        said = "passes"
        for kind, word in (("failure", "fails"), ("error", "fails"), ("skipped", "not run")):
            element = case.find(kind)
            if element is not None:
                said = f"{word}: {one_line(element.get('message') or element.text or '')}"
                break
        found[case.get("name")] = said
    return found


def commit() -> str:
    """The checkout's commit, ``-dirty`` if files differ from it."""
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def run_row(name: str, row: Row, folder: Path, built: str) -> dict:
    """Run the suite on one executor; its row of the scorecard."""
    report = folder / f"{name}.xml"
    command = [
        sys.executable, "-m", "pytest", f"{MODULE}::{row.test_class}", "-q",
        "-p", "no:cacheprovider", "-p", "no:randomly", f"--junitxml={report}", *row.options,
    ]  # fmt: skip
    env = dict(os.environ, TIMING_EXECUTOR_SCORECARD="1")
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, timeout=EXECUTOR_LIMIT,
        capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if not report.exists():
        raise RuntimeError(
            f"{name}: pytest wrote no report:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return {
        "name": name,
        "what": row.what,
        "version": f"{row.package} {version(row.package)}",
        "commit": built if row.package == "timing-executor" else None,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": round(seconds, 1),
        "verdicts": verdicts(report),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executors", nargs="*", metavar="executor", help=f"of {list(ROWS)}")
    names = parser.parse_args(argv).executors or list(ROWS)
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error(f"no executor {unknown} in the scorecard: name some of {list(ROWS)}")
    from covalent_plugin_testing.conformance import case_names

    kept = json.loads(SCORECARD.read_text()) if SCORECARD.exists() else {"rows": []}
    rows = {row["name"]: row for row in kept["rows"]}
    built = commit()  # before this run changes scorecard.json
    with tempfile.TemporaryDirectory(prefix="timing-executor-scorecard-") as folder:
        for name in names:
            print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
            rows[name] = run_row(name, ROWS[name], Path(folder), built)
            passed = list(rows[name]["verdicts"].values()).count("passes")
            print(f"  {passed} of {len(case_names())} cases pass, {rows[name]['seconds']} s")
            scorecard = {
                "cases": case_names(),
                "python": platform.python_version(),
                "cores": os.cpu_count(),
                "rows": [rows[key] for key in ROWS if key in rows],
            }
            SCORECARD.write_text(json.dumps(scorecard, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {SCORECARD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
