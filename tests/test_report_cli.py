"""The `timing-executor report` command on real record files."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from timing_executor.server_side.records import TaskRecord
from timing_report.cli import main

A, B, TEXT = "aaaa1111-0000", "bbbb2222-0000", "cccc3333-0000"


def records() -> list[str]:
    """Two JSON Lines dispatches of the same workflow, a text one, and two foreign lines."""
    return [
        "an earlier line\n",
        TaskRecord(A, 0, "add", 1_800_000_000.0, 0.25, 0.5).to_line("jsonl"),
        TaskRecord(A, 1, "multiply", 1_800_000_001.0, 1.0, 2.0).to_line("jsonl"),
        TaskRecord(TEXT, 0, "add", 0, 0.125, 0).to_line("text"),
        TaskRecord(TEXT, 1, "multiply", 0, 0.5, 0, "FAILED", "ValueError: no").to_line("text"),
        '{"half": "a line cut o\n',
        TaskRecord(B, 0, "add", 1_800_000_100.0, 0.5, 0.5).to_line("jsonl"),
        TaskRecord(B, 1, "multiply", 1_800_000_101.0, 3.0, 4.0, "FAILED", "KeyError: 'x'").to_line(
            "jsonl"
        ),
    ]


@pytest.fixture
def record_file(tmp_path) -> Path:
    path = tmp_path / "timing.log"
    path.write_text("".join(records()))
    return path


def run_cli(*args: str, command=(sys.executable, "-m", "timing_report")):
    return subprocess.run([*command, "report", *args], capture_output=True, text=True, timeout=120)


def squeezed(table: str) -> list[str]:
    """The table's lines with single spaces between cells and each rule shown as ``---``."""
    return ["---" if set(line) == {"─"} else " ".join(line.split()) for line in table.splitlines()]


def report(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["report", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_installed_command_prints_a_table_per_dispatch_and_one_warning(record_file):
    script = Path(sys.executable).with_name("timing-executor")
    done = run_cli(str(record_file), command=(str(script),))
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"timing-executor report: warning: skipped 2 line(s) of {record_file} "
        "that are not timing records (the first is line 1)\n"
    )
    assert all(line == line.rstrip() for line in done.stdout.splitlines())
    tables = [squeezed(table) for table in done.stdout.split("\n\n")]
    assert [table[0] for table in tables] == [
        f"Dispatch {A}, started 2027-01-15 08:00:00 UTC",
        f"Dispatch {TEXT}",
        f"Dispatch {B}, started 2027-01-15 08:01:40 UTC",
    ]
    assert tables[0][1:] == [
        "Node Name CPU s Wall s CPU/wall Status",
        "---",
        "0 add 0.250000 0.500000 0.50 COMPLETED",
        "1 multiply 1.000000 2.000000 0.50 COMPLETED",
        "---",
        "Total 2 nodes 1.250000 2.500000 0.50 all COMPLETED",
    ]
    assert tables[1][1:] == [
        "Node CPU s Status",
        "---",
        "0 0.125000 COMPLETED",
        "1 0.500000 FAILED",
        "---",
        "Total 0.625000 1 FAILED",
    ]


def test_the_command_neither_imports_covalent_nor_writes_its_configuration(record_file, tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "COVALENT_"))}
    probe = (
        "import sys\n"
        "from timing_report.cli import main\n"
        f"status = main(['report', {str(record_file)!r}])\n"
        "print('covalent imported:', 'covalent' in sys.modules, file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "HOME": str(home)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("covalent imported: False\n")
    assert not home.exists()


@pytest.mark.parametrize("xdg_cache_home", [None, "/srv/cache"])
def test_the_default_path_is_the_executors_default_file(tmp_path, xdg_cache_home):
    env = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    env["HOME"] = str(tmp_path)
    if xdg_cache_home:
        env["XDG_CACHE_HOME"] = xdg_cache_home
    probe = (
        "from timing_executor.server_side.records import DEFAULT_TIMING_FILEPATH as executors\n"
        "from timing_report.cli import DEFAULT_TIMING_FILEPATH as command\n"
        "print(executors == command, command)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    expected = Path(xdg_cache_home or tmp_path / ".cache") / "covalent" / "timing.log"
    assert done.stdout == f"True {expected}\n", done.stderr


def run_without_path(tmp_path: Path, config: str | None, **env: str):
    """``report`` with no PATH, in a HOME of its own with this ``covalent.conf``."""
    home = tmp_path / "home"
    (home / ".config" / "covalent").mkdir(parents=True)
    if config is not None:
        (home / ".config" / "covalent" / "covalent.conf").write_text(config)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "COVALENT_"))}
    return subprocess.run(
        [sys.executable, "-m", "timing_report", "report", "--format", "json"],
        env={**clean, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_path_it_reads_the_file_covalent_conf_names(record_file, tmp_path):
    config = f'[executors.timing]\ntiming_filepath = "{record_file}"\n'
    done = run_without_path(tmp_path, config)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["path"] == str(record_file)
    config_file = tmp_path / "home" / ".config" / "covalent" / "covalent.conf"
    assert done.stderr.startswith(
        f"timing-executor report: reading {record_file} "
        f"([executors.timing] timing_filepath in {config_file})\n"
    )


def test_without_path_a_configured_folder_means_its_timing_log(record_file, tmp_path):
    config_dir = tmp_path / "elsewhere"
    config_dir.mkdir()
    (config_dir / "covalent.conf").write_text(
        f'[executors.timing]\ntiming_filepath = "{record_file.parent}"\n'
    )
    done = run_without_path(tmp_path, None, COVALENT_CONFIG_DIR=str(config_dir))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["path"] == str(record_file)


def test_without_path_or_configuration_it_reads_the_default_file(tmp_path):
    done = run_without_path(tmp_path, "[sdk]\n")
    expected = tmp_path / "home" / ".cache" / "covalent" / "timing.log"
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"timing-executor report: reading {expected} (the executors' default file)\n"
    )


def test_python_m_compares_two_dispatches_node_by_node(record_file):
    done = run_cli(str(record_file), "--compare", "aaaa", "bbbb")
    assert done.returncode == 0, done.stderr
    assert squeezed(done.stdout) == [
        f"A = dispatch {A}",
        f"B = dispatch {B}",
        "Node Name CPU s A CPU s B B - A B / A Wall s A Wall s B B - A B / A Status",
        "---",
        "0 add 0.250000 0.500000 +0.250000 2.00 0.500000 0.500000 +0.000000 1.00 COMPLETED",
        "1 multiply 1.000000 3.000000 +2.000000 3.00 2.000000 4.000000 +2.000000 2.00 "
        "COMPLETED -> FAILED",
        "---",
        "Total 2 nodes 1.250000 3.500000 +2.250000 2.80 2.500000 4.500000 +2.000000 1.80",
    ]


def test_json_output_holds_every_field_and_the_totals(capsys, record_file):
    status, out, err = report(capsys, record_file, "--dispatch", B, "--format", "json")
    assert status == 0 and "skipped 2 line(s)" in err
    document = json.loads(out)
    assert document["skipped_lines"] == 2
    (dispatch,) = document["dispatches"]
    assert dispatch["dispatch_id"] == B and dispatch["started_at"] == 1_800_000_100.0
    assert dispatch["nodes"][1] == {
        "node_id": 1,
        "node_name": "multiply",
        "status": "FAILED",
        "cpu_seconds": 3.0,
        "wall_seconds": 4.0,
        "cpu_per_wall": 0.75,
        "started_at": 1_800_000_101.0,
        "error": "KeyError: 'x'",
    }
    assert dispatch["totals"] == {
        "nodes": 2,
        "failed": 1,
        "cancelled": 0,
        "cpu_seconds": 3.5,
        "wall_seconds": 4.5,
        "cpu_per_wall": 3.5 / 4.5,
    }


def test_json_comparison_gives_differences_and_ratios(capsys, record_file):
    status, out, _ = report(capsys, record_file, "--compare", A, TEXT, "--format", "json")
    assert status == 0
    document = json.loads(out)
    assert (document["a"], document["b"]) == (A, TEXT)
    first = document["nodes"][0]
    assert (first["cpu_difference"], first["cpu_ratio"]) == (-0.125, 0.5)
    assert (first["wall_difference"], first["wall_ratio"]) == (None, None)
    assert document["totals"]["b"]["wall_seconds"] is None


def test_csv_has_a_row_per_node_of_every_dispatch(capsys, record_file):
    status, out, _ = report(capsys, record_file, "--format", "csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["dispatch_id"], row["node_id"]) for row in rows] == [
        (A, "0"),
        (A, "1"),
        (TEXT, "0"),
        (TEXT, "1"),
        (B, "0"),
        (B, "1"),
    ]
    assert rows[3] == {
        "dispatch_id": TEXT,
        "node_id": "1",
        "node_name": "",
        "status": "FAILED",
        "cpu_seconds": "0.5",
        "wall_seconds": "",
        "cpu_per_wall": "",
        "started_at": "",
        "error": "ValueError",
    }


def test_csv_comparison(capsys, record_file):
    status, out, _ = report(capsys, record_file, "--compare", A, B, "--format", "csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[1]["status_b"] == "FAILED" and rows[1]["cpu_ratio"] == "3.0"
    assert rows[1]["wall_difference"] == "2.0"


def test_a_missing_file_is_named_and_fails(tmp_path):
    missing = tmp_path / "nowhere" / "timing.log"
    done = run_cli(str(missing))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"timing-executor report: error: cannot read {missing}: No such file or directory\n"
    )


def test_an_unknown_dispatch_fails_with_a_hint(capsys, record_file):
    status, out, err = report(capsys, record_file, "--compare", A, "dddd")
    assert status == 1 and out == ""
    assert f"error: no record of dispatch 'dddd' in {record_file}. Run" in err


def test_a_file_without_records_fails_after_one_warning(capsys, tmp_path):
    path = tmp_path / "foreign.log"
    path.write_bytes(b"\xff\xfe not utf-8\nplain text\n")
    status, out, err = report(capsys, path)
    assert status == 1 and out == ""
    assert err.splitlines() == [
        f"timing-executor report: warning: skipped 2 line(s) of {path} "
        "that are not timing records (the first is line 1)",
        f"timing-executor report: error: {path} holds no timing records",
    ]


def test_repeated_nodes_are_reported_once_with_the_last_record(capsys, tmp_path):
    path = tmp_path / "t.log"
    path.write_text(
        "".join(TaskRecord("d", 0, "f", 0, cpu, 0).to_line() for cpu in (1.0, 2.0, 3.0))
    )
    status, out, err = report(capsys, path, "--format", "csv")
    assert status == 0 and out.splitlines()[1].startswith("d,0,,COMPLETED,3.0,")
    assert "note: 2 record(s) repeat a node" in err


def test_plot_needs_compare(capsys, record_file, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["report", str(record_file), "--plot", str(tmp_path / "p.png")])
    assert exited.value.code == 2
    assert "--plot draws a comparison" in capsys.readouterr().err


def test_plot_saves_a_png_bar_chart(capsys, record_file, tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs the plot extra")
    png = tmp_path / "compare.png"
    status, _, _ = report(capsys, record_file, "--compare", A, B, "--plot", png)
    assert status == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
