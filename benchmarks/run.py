"""Run every case on Covalent servers of its own and print the table of medians.

    python -m benchmarks.run                 # what ``tox -e bench`` runs
    python -m benchmarks.run --repetitions 1 --no-dask --no-write
    python -m benchmarks.run --repetitions 1 --cases G    # one case, printed only
    python -m benchmarks.run --repetitions 1 --cases R    # SSH, against covalent-ssh-plugin
    python -m benchmarks.run --repetitions 1 --cases T    # S3 + Slurm's REST API

Each case starts an isolated server (covalent_plugin_testing) with the two
baselines in its executor plugin folder, and stops it before the next case.
The table also goes to benchmarks/results/, the chart to docs/explanation/;
``results.json`` is written after each case, so a run stopped keeps what it measured
(and names the cases it did not reach).
"""

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from covalent_plugin_testing.server import free_port, isolate_this_process, running_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
CHART = ROOT / "docs" / "explanation" / "performance.png"
PLUGIN_DIR = ROOT / "benchmarks" / "plugins"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask cases (B dask, G)")
    parser.add_argument(
        "--no-remote", action="store_true", help="skip the SSH, Slurm and batch cases (R, S, T)"
    )
    parser.add_argument("--no-docs", action="store_true", help="skip timing tox -e docs (E)")
    parser.add_argument("--no-write", action="store_true", help="print only, write no files")
    parser.add_argument(
        "--cases",
        default="ABCDEGIMRST",
        help="run only these cases, such as G (implies --no-write)",
    )
    args = parser.parse_args(argv)
    if args.cases != parser.get_default("cases"):
        args.no_write = True

    user_env = dict(os.environ)
    root = Path(tempfile.mkdtemp(prefix="timing-executor-bench-"))
    # Removed at exit, after the chart (matplotlib caches fonts in this HOME) and after
    # multiprocessing's own clean-up of its folder inside it (case I): atexit runs the
    # functions it was given last first, and multiprocessing registers its later.
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    port = free_port()
    isolate_this_process(root / "client", port)
    # Import covalent only after isolating this process.
    from benchmarks import cases, dask_cases, docs_build, isolation, overhead, report

    machine = report.machine()
    reps, work = args.repetitions, root / "work"
    work.mkdir()
    plugins = {"COVALENT_EXECUTOR_DIR": str(PLUGIN_DIR)}
    server_cases = {
        "A": lambda: cases.accuracy(["naive", "to_thread", "sync", "async"], reps, work),
        "B": lambda: cases.concurrency(["async", "to_thread", "sync", "local"], reps, work),
        "C": lambda: cases.starvation(["idle", "async", "to_thread", "sync"], reps, work),
        "D": lambda: cases.dispatch_overhead(["local", "sync", "async"], reps, work),
        "M": lambda: cases.task_memory(["async"], reps, work, port),
    }

    def on_server(name: str, run_case, cluster: bool = False):
        def step():
            with running_server(root / f"server-{name}", port, cluster=cluster, extra_env=plugins):
                cases.warm_up()
                return run_case()

        return step

    steps = [
        (f"case {name}: on a server of its own", name, on_server(name, run_case))
        for name, run_case in server_cases.items()
    ]
    if not args.no_dask:
        dask = on_server("B-dask", lambda: cases.concurrency(["dask"], reps, work), cluster=True)
        steps.append(("case B, dask: on a server with a Dask cluster", "B", dask))
        on_cluster = on_server("G", lambda: dask_cases.on_cluster(reps, work))
        steps.append(
            ("case G: DaskTimingExecutor on clusters of 1 and 2 workers", "G", on_cluster)
        )
    if not args.no_remote:

        def remote(name: str):
            def step():
                # Imported here: without the upstream plugins only R, S and T fail.
                from benchmarks import batch_case, remote_cases

                run_case = {
                    "R": remote_cases.ssh_case,
                    "S": remote_cases.slurm_case,
                    "T": batch_case.batch_case,
                }[name]
                return run_case(root, port, plugins, reps, work)

            return step

        steps.append(
            ("case R: SSHTimingExecutor and covalent-ssh-plugin on one sshd", "R", remote("R"))
        )
        steps.append(
            ("case S: SlurmTimingExecutor and covalent-slurm-plugin over SSH", "S", remote("S"))
        )
        steps.append(
            ("case T: BatchTimingExecutor and SlurmTimingExecutor on one Slurm", "T", remote("T"))
        )
    steps.append(
        ("case D: run() without a server", "D", lambda: overhead.run_overhead(reps, work))
    )
    steps.append(
        ("case I: ways to run a task apart", "I", lambda: isolation.compare_ways(reps, work))
    )
    if args.no_docs or not docs_build.docs_env_exists():
        _log("case E: not measured (no [testenv:docs] in tox.ini, or --no-docs)")
    else:
        docs = lambda: docs_build.docs_build(reps, work, user_env)  # noqa: E731
        steps.append(("case E: tox -e docs, cold then warm", "E", docs))

    steps = [step for step in steps if step[1].split()[0] in args.cases]
    results: dict[str, cases.CaseResult] = {}
    failed = []
    for number, (description, name, step) in enumerate(steps, 1):
        _log(description)
        try:
            results.setdefault(name, cases.CaseResult()).extend(step())
        except Exception as error:  # keep the other cases' figures
            failed.append(f"{description}: {type(error).__name__}: {error}")
            _log(f"FAILED {failed[-1]}")
        if not args.no_write:  # a run stopped later keeps what it measured
            left = [later[0] for later in steps[number:]]
            _write_samples(machine, results, failed, left)
    samples = [s for result in results.values() for s in result.samples]
    failures = "".join(f"\nNot measured: {failure}\n" for failure in failed)
    text = f"Machine: {machine}\n\n{report.table(samples)}\n{failures}"
    print(text)
    if not args.no_write:
        (RESULTS_DIR / "results.md").write_text(text)
        (RESULTS_DIR / "summary.md").write_text(report.summary(samples) + "\n")
        if all(name in results for name in "ABI"):
            abi = (results[name] for name in "ABI")
            report.chart(*abi, CHART, results.get("G"))
        _log(f"wrote {RESULTS_DIR}/results.md, results.json and {CHART}")
    if failed:
        sys.exit(1)


def _write_samples(machine: str, results: dict, failed: list[str], left: list[str]) -> None:
    """``results.json``: every sample so far, the cases that failed and those not run yet."""
    samples = [asdict(s) for result in results.values() for s in result.samples]
    raw = {"machine": machine, "samples": samples, "failed": failed}
    if left:
        raw["not_run_yet"] = left
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "results.json").write_text(json.dumps(raw, indent=1) + "\n")


if __name__ == "__main__":
    main()
