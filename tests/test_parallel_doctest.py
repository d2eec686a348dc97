"""conf/parallel_doctest.py: the docs' doctest builder runs each page in a process of
its own, all at once, and reports like Sphinx's (tiny projects, no server)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
WAIT_SECONDS = 60


def page(*blocks: str) -> str:
    return "Page\n====\n\n" + "\n".join(textwrap.dedent(block) for block in blocks)


def code_block(code: str, output: str | None = None) -> str:
    block = ".. testcode::\n\n" + textwrap.indent(textwrap.dedent(code).strip(), "   ") + "\n"
    if output is not None:
        block += "\n.. testoutput::\n\n" + textwrap.indent(output, "   ") + "\n"
    return block


def build(tmp_path: Path, pages: dict[str, str], **env: str) -> subprocess.CompletedProcess:
    source = tmp_path / "source"
    source.mkdir()
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(CONF_DIR)!r})\nextensions = ['parallel_doctest']\n"
    )
    names = "\n".join(f"   {name}" for name in pages)
    (source / "index.rst").write_text(f"Index\n=====\n\n.. toctree::\n\n{names}\n")
    for name, text in pages.items():
        (source / f"{name}.rst").write_text(text)
    command = [sys.executable, "-m", "sphinx", "-E", "-q", "-b", "doctest"]
    return subprocess.run(
        [*command, str(source), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=WAIT_SECONDS * 4,
    )


def meet(mine: str, other: str, folder: Path) -> str:
    """A page that leaves a file and waits for the other page's: passes only if the
    two pages run at the same time."""
    code = f"""
        import time
        from pathlib import Path

        folder = Path({str(folder)!r})
        (folder / {mine!r}).touch()
        deadline = time.monotonic() + {WAIT_SECONDS}
        while not (folder / {other!r}).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        print((folder / {other!r}).exists())
    """
    return page(code_block(code, "True"))


def test_pages_run_at_the_same_time_and_a_page_shares_its_names(tmp_path):
    folder = tmp_path / "meeting"
    folder.mkdir()
    pages_read = tmp_path / "pages-read"
    shared = page(code_block("answer = 6 * 7"), code_block("print(answer)", "42"))
    done = build(
        tmp_path,
        {"first": meet("a", "b", folder), "second": meet("b", "a", folder), "shared": shared},
        PARALLEL_DOCTEST_PAGES_READ=str(pages_read),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "out" / "output.txt").read_text()
    assert "    4 tests\n    0 failures in tests" in summary
    assert pages_read.exists()


def test_failures_and_a_process_that_dies_fail_the_build_in_page_order(tmp_path):
    pages = {
        "wrong": page(code_block("print(2)", "3")),
        "dies": page(code_block("import os\nos._exit(3)", "never")),
        "right": page(code_block("print(1)", "1")),
    }
    done = build(tmp_path, pages)
    assert done.returncode == 1
    report = (tmp_path / "out" / "output.txt").read_text()
    assert "dies: the process running its examples exited with 3" in report
    assert "Expected:\n    3\nGot:\n    2" in report
    assert (
        report.index("dies:") < report.index("Document: right") < report.index("Document: wrong")
    )
    assert "    2 failures in tests" in report


STUCK = "import time\nwhile True:\n    time.sleep(0.1)"


def test_a_page_that_runs_too_long_fails_the_build_instead_of_hanging_it(tmp_path):
    """Its second example is stuck too: the page ends at its time limit."""
    pages = {
        "stuck": page(code_block(STUCK, "never"), code_block(STUCK, "never")),
        "right": page(code_block("print(1)", "1")),
    }
    done = build(tmp_path, pages, PARALLEL_DOCTEST_PAGE_SECONDS="2")
    assert done.returncode == 1
    report = (tmp_path / "out" / "output.txt").read_text()
    assert "TimeoutError: stuck: its examples ran longer than 2 s" in report
    assert "    1 failure in tests" in report or "    1 failures in tests" in report
