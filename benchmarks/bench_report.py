"""F: how fast `timing-executor report` reads a big record file, and in how much memory.

Writes record files of 100,000 and 1,000,000 records (half text, half JSON Lines,
interleaved; dispatches of 10 nodes) with ``TaskRecord.to_line``, then runs the
report command's ``main()`` in a fresh process per measurement and prints its
time and peak memory: the process's peak RSS (the command does not import
Covalent), its growth over the RSS just before ``main()``, and, separately,
tracemalloc's peak while reading.

With ``--dispatch`` (or ``--compare``) only that dispatch's nodes are kept, so
memory must be the same for both file sizes. A report of every dispatch keeps
every (dispatch, node) pair it prints: that figure grows with the pairs.

Run: ``python -m benchmarks.bench_report`` (add ``--records N`` for another size).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing_executor.server_side.records import TaskRecord

NODES_PER_DISPATCH = 10

#: Runs in the child: measure ``main(argv)``, with output thrown away.
CHILD = r"""
import contextlib, json, os, re, sys, time, tracemalloc
from timing_report.cli import main
from timing_report.report import collect


def peak_rss_kib():
    # VmHWM is this process's own peak; ru_maxrss would also count the parent's from before exec.
    with open("/proc/self/status") as status:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status.read(), re.M).group(1))


argv, traced = json.loads(sys.argv[1]), sys.argv[2] == "traced"
before = peak_rss_kib()
with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
    if traced:
        tracemalloc.start()
        wanted = argv[argv.index("--dispatch") + 1]
        start = time.perf_counter()
        collect(argv[1], lambda d: d == wanted)
        status = 0
    else:
        start = time.perf_counter()
        status = main(argv)
    seconds = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1] if traced else None
after = peak_rss_kib()
print(json.dumps({"status": status, "seconds": seconds, "rss_after_imports_kib": before,
                  "rss_peak_kib": after, "tracemalloc_peak_bytes": peak}))
"""


def dispatch_id(number: int) -> str:
    return f"{number:08x}-0000-4000-8000-{number:012x}"


def write_records(path: Path, records: int) -> None:
    """Write ``records`` records, alternating text and JSON Lines, 10 nodes per dispatch."""
    with path.open("w") as out:
        for index in range(records):
            dispatch, node = divmod(index, NODES_PER_DISPATCH)
            record = TaskRecord(
                dispatch_id(dispatch),
                node,
                f"task_{node}",
                1_800_000_000.0 + index,
                0.001 * (node + 1),
                0.002 * (node + 1),
                "ValueError: bad" if node == 9 else None,
            )
            out.write(record.to_line("jsonl" if index % 2 else "text"))


def measure(argv: list[str], traced: bool = False) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(argv), "traced" if traced else "plain"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    if result["status"] != 0:
        raise RuntimeError(f"report {argv} exited {result['status']}: {done.stderr}")
    return result


def run(records: int = 1_000_000) -> list[dict]:
    """Measure the report on a ``records // 10`` file and a ``records`` file; return rows."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as workdir:
        sizes = {"small": records // 10, "big": records}
        paths = {}
        for name, count in sizes.items():
            paths[name] = Path(workdir) / f"{name}.log"
            start = time.perf_counter()
            write_records(paths[name], count)
            print(
                f"wrote {count:,} records ({paths[name].stat().st_size / 2**20:.0f} MiB) "
                f"in {time.perf_counter() - start:.1f} s",
                file=sys.stderr,
            )
        # Dispatches in the middle of the small file, so both files hold them.
        middle = dispatch_id(sizes["small"] // NODES_PER_DISPATCH // 2)
        other = dispatch_id(sizes["small"] // NODES_PER_DISPATCH // 2 + 1)
        cases = [
            ("--dispatch (table)", ["--dispatch", middle]),
            ("--compare (table)", ["--compare", middle, other]),
            ("all dispatches (csv)", ["--format", "csv"]),
        ]
        for label, options in cases:
            for name, count in sizes.items():
                argv = ["report", str(paths[name]), *options]
                rows.append({"case": label, "records": count, **measure(argv)})
        for name, count in sizes.items():
            argv = ["report", str(paths[name]), "--dispatch", middle]
            traced = measure(argv, traced=True)
            rows.append(
                {"case": "--dispatch, read only (tracemalloc)", "records": count, **traced}
            )
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"{'case':38} {'records':>10} {'seconds':>8} {'us/record':>9} {'peak memory':>30}")
    for row in rows:
        peak = (
            f"{row['tracemalloc_peak_bytes'] / 1024:.0f} KiB traced"
            if row["tracemalloc_peak_bytes"] is not None
            else f"{row['rss_peak_kib'] / 1024:.1f} MiB RSS "
            f"(+{(row['rss_peak_kib'] - row['rss_after_imports_kib']) / 1024:.1f})"
        )
        per_record = row["seconds"] / row["records"] * 1e6
        print(
            f"{row['case']:38} {row['records']:>10,} {row['seconds']:>8.2f} "
            f"{per_record:>9.2f} {peak:>30}"
        )
    by_case: dict[str, list[dict]] = {}
    for row in rows:
        by_case.setdefault(row["case"], []).append(row)
    for case, (small, big) in by_case.items():
        key = "tracemalloc_peak_bytes" if small["tracemalloc_peak_bytes"] else "rss_peak_kib"
        memory_ratio = big[key] / small[key]
        print(
            f"{case}: 10x the records -> {big['seconds'] / small['seconds']:.1f}x the time, "
            f"{memory_ratio:.2f}x the memory"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    rows = run(args.records)
    print_rows(rows)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
