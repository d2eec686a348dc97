"""The README's hand-run example works as printed against a real server, and its
commands work as printed, also with Debian's own (PEP 668) Python."""

import contextlib
import io
import os
import re
import subprocess
from pathlib import Path

import pytest

from timing_executor.server_side.records import DEFAULT_TIMING_FILEPATH

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.server
def test_readme_example_dispatches_and_records(covalent_server, tmp_path, monkeypatch):
    (example,) = python_blocks(README.read_text())
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example, str(README), "exec"), {"__name__": "__main__"})
    first, *records = printed.getvalue().splitlines()
    assert first == "6"
    (add_record,) = [line for line in records if line]
    assert re.fullmatch(r"Node \d+ in dispatch \S+ took \d+\.\d{6}s of CPU time\.", add_record)
    dispatch_id = add_record.split()[4]
    assert dispatch_id in Path(DEFAULT_TIMING_FILEPATH).read_text()
    assert (tmp_path / "timing.log").read_text() == add_record + "\n"


REPOSITORY = README.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")


def readme_command(what: str) -> str:
    """The command of the README's Commands row whose description starts with ``what``."""
    rows = re.findall(r"^\| (.+?) \| `([^`]+)` \|$", README.read_text(), flags=re.MULTILINE)
    (command,) = [command for description, command in rows if description.startswith(what)]
    return command


def test_ci_runs_exactly_the_readmes_test_command():
    ci_script = (REPOSITORY / ".ci" / "run").read_text().strip().splitlines()
    assert ci_script[-1] == readme_command("run every test")


def newcomer_environment(home: Path) -> dict[str, str]:
    """A shell of someone with Debian's Python first on PATH and an empty HOME."""
    keep = ("PATH", "LANG", "LC_ALL", "TERM", "CI", "TMPDIR")
    env = {name: value for name, value in os.environ.items() if name in keep}
    env["PATH"] = os.pathsep.join(["/usr/bin", "/bin", env.get("PATH", "")])
    env["HOME"] = str(home)
    return env


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no Debian system Python here")
def test_the_readmes_docs_command_works_with_debians_own_python(tmp_path):
    home, clone = tmp_path / "home", tmp_path / "clone"
    home.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True)
    env = newcomer_environment(home)
    which = subprocess.run(["bash", "-c", "command -v python3"], env=env, capture_output=True)
    assert which.stdout.decode().strip() == str(SYSTEM_PYTHON)
    if any(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED")):  # what the README avoids
        refused = subprocess.run(
            ["python3", "-m", "pip", "install", "tox"], env=env, capture_output=True, text=True
        )
        assert "externally-managed-environment" in refused.stderr
    done = subprocess.run(
        ["bash", "-c", readme_command("rebuild the documentation")],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=1800,
    )
    failures = clone / "build" / "doctest" / "output.txt"  # the examples' report
    report = failures.read_text()[-6000:] if failures.is_file() else ""
    assert done.returncode == 0, report + done.stdout[-3000:] + done.stderr[-3000:]
    assert "docs: OK" in done.stdout
    assert (clone / "build" / "html" / "index.html").is_file()
