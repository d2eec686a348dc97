"""Keep the benchmark code working: one repetition at tiny sizes, no timing asserted.

The benchmark itself (``tox -e bench``) is not a test; these only check that every
case runs against a real server and yields every figure the table reports.
"""

import math

import pytest

from benchmarks import cases, dask_cases, isolation, measures, overhead, report


def test_records_of_the_naive_executor_are_read_without_newlines():
    log = (
        "Node 0 in dispatch d1 took 0.5s of CPU time."
        "Node 2 in dispatch d1 took 1.25e-05s of CPU time."
        "Node 0 in dispatch other took 9.0s of CPU time."
    )
    assert measures.recorded_cpu_seconds(log, "d1") == {0: 0.5, 2: 1.25e-05}


def test_most_at_once_counts_overlapping_intervals_only():
    intervals = [(0.0, 2.0), (1.0, 3.0), (2.5, 4.0), (5.0, 6.0)]
    assert measures.most_at_once(intervals) == 2
    assert measures.span(intervals) == 6.0
    assert measures.start_gap(intervals) == 5.0


def mismatched(figures: dict, expected: dict) -> dict:
    """The rows of ``expected`` (key: the value that the raw figures give the row)
    that ``figures`` lacks, or holds as another value or not finite: key: (found,
    expected). The rows computed against a baseline variant must pass this."""
    return {
        key: (figures.get(key), value)
        for key, value in expected.items()
        if not (
            key in figures and math.isfinite(figures[key]) and figures[key] == pytest.approx(value)
        )
    }


@pytest.mark.server
def test_every_server_case_runs_and_reports(covalent_server, tmp_path):
    result = cases.accuracy(["sync", "async"], 1, tmp_path, tasks_count=2, cpu_seconds=0.05)
    result.extend(cases.concurrency(["async", "local"], 1, tmp_path, tasks_count=3, seconds=0.1))
    result.extend(cases.starvation(["idle", "async"], 1, tmp_path, long_tasks=2, seconds=1.0))
    result.extend(cases.dispatch_overhead(["local", "sync"], 1, tmp_path, tasks_count=3))
    port = covalent_server.port
    result.extend(cases.task_memory(["async"], 1, tmp_path, port, tasks_count=3))

    figures = {(s.case, s.variant, s.metric): s.value for s in result.samples}
    for variant in ("sync", "async"):
        assert figures["A", variant, "recorded / true, median task"] > 0
        assert 1 <= figures["A", variant, "most at once"] <= 2
    assert 1 <= figures["B", "async", "most at once"] <= 3
    assert figures["B", "local", "span / local span"] == 1
    assert figures["C", "idle", "delay beyond idle (s)"] == 0
    assert ("C", "async", "local task start delay (s)") in figures
    assert figures["D", "local", "time / local time"] == 1
    assert ("D", "sync", "3 trivial tasks, dispatch to done (s)") in figures
    trivial = "3 trivial tasks, dispatch to done (s)"
    span = {v: figures["B", v, "span (s)"] for v in ("async", "local")}
    delay = {v: figures["C", v, "local task start delay (s)"] for v in ("async", "idle")}
    elapsed = {v: figures["D", v, trivial] for v in ("sync", "local")}
    ratios = {
        ("B", "async", "span / local span"): span["async"] / span["local"],
        ("D", "sync", "time / local time"): elapsed["sync"] / elapsed["local"],
    }
    beyond_idle = {("C", "async", "delay beyond idle (s)"): delay["async"] - delay["idle"]}
    assert mismatched(figures, ratios | beyond_idle) == {}
    assert all(figures[key] > 0 for key in ratios)
    assert len(result.intervals["async"]) == 3
    assert figures["M", "async", "tasks running when measured"] == 3
    assert figures["M", "async", "processes measured (2 per task)"] == 6  # supervisor, task
    assert 0 < figures["M", "async", "task processes, USS summed (MB)"] < 500

    table = report.table(result.samples)
    assert table.startswith("| case | variant | metric | median | runs |")
    assert len(table.splitlines()) == 2 + len(figures)


@pytest.mark.server
def test_the_dask_case_runs_and_reports(covalent_server, tmp_path):
    result = dask_cases.on_cluster(
        1, tmp_path, ("dask_timing",), cpu_seconds=0.05, trivial=3, sleepers=4, naps=(0.1,)
    )
    figures = {(s.case, s.variant, s.metric): s.value for s in result.samples}
    assert figures["G", "dask_timing", "recorded / true, median task"] > 0
    assert figures["G", "dask", "time / dask time"] == 1
    assert ("G", "dask_timing", "3 trivial tasks, dispatch to done (s)") in figures
    trivial = "3 trivial tasks, dispatch to done (s)"
    ratio = figures["G", "dask_timing", trivial] / figures["G", "dask", trivial]
    assert mismatched(figures, {("G", "dask_timing", "time / dask time"): ratio}) == {}
    assert figures["G", "dask_timing", "time / dask time"] > 0
    assert ("G", "dask_timing, 1 worker", "4 x sleep(0.1), span (s)") in figures
    assert 1 <= figures["G", "dask_timing, 2 workers", "4 x sleep(0.1), most at once"] <= 4
    assert figures["G", "dask_timing", "4 x sleep(0.1), span on 2 / on 1 worker"] > 0
    assert len(result.intervals["dask_timing, 2 workers"]) == 4


def test_run_overhead_measures_every_variant(tmp_path):
    result = overhead.run_overhead(1, tmp_path, calls=5)
    measured = {s.variant for s in result.samples if s.metric.startswith("run() cost")}
    assert measured == {"naive", "sync", "async"}
    assert (tmp_path / "D-run-naive-0.log").read_text().count("of CPU time.") == 6
    assert (tmp_path / "D-run-async-0.log").read_text().count("of CPU time.") == 6


def test_every_way_to_run_a_task_apart_is_measured(tmp_path):
    result = isolation.compare_ways(1, tmp_path, calls=2)
    figures = {(s.variant, s.metric): s.value for s in result.samples}
    failed = "of 3 tasks, failed by a 4th's os._exit()"
    assert {variant: figures[variant, failed] for variant in isolation_ways()} == {
        "thread": 3,
        "pool": 3,
        "spawn": 0,
        "forkserver": 0,
        "launcher": 0,
    }
    assert 0 < figures["launcher", "one sleeping task's process, USS (MB)"] < 100


def isolation_ways() -> list[str]:
    return ["thread", "pool", "spawn", "forkserver", "launcher"]


def test_chart_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    accuracy, concurrency, ways = cases.CaseResult(), cases.CaseResult(), cases.CaseResult()
    accuracy.add("A", "naive", "recorded / true, median task", 1.4, 0)
    concurrency.intervals["async"] = [(0.0, 1.0), (0.5, 1.5)]
    ways.add("I", "launcher", "start a trivial task and see it end (ms)", 20.0, 0)
    cluster = cases.CaseResult()
    cluster.intervals["dask_timing, 1 worker"] = [(0.0, 0.5), (0.5, 1.0)]
    report.chart(accuracy, concurrency, ways, tmp_path / "chart.png", cluster)
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")
