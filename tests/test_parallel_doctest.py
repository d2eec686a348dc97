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


def build(
    tmp_path: Path, pages: dict[str, str], conf: str = "", *options: str, **env: str
) -> subprocess.CompletedProcess:
    """Build ``pages`` with the builder; ``conf`` is more of the project's conf.py,
    ``options`` more of sphinx-build's."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(CONF_DIR)!r})\nextensions = ['parallel_doctest']\n"
        + textwrap.dedent(conf)
    )
    names = "\n".join(f"   {name}" for name in pages)
    (source / "index.rst").write_text(f"Index\n=====\n\n.. toctree::\n\n{names}\n")
    for name, text in pages.items():
        (source / f"{name}.rst").write_text(text)
    command = [sys.executable, "-m", "sphinx", "-E", "-q", "-b", "doctest", *options]
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


def test_a_page_with_examples_is_read_first_and_runs_while_the_others_are_read(tmp_path):
    """Reading page a waits for the file that page z's example leaves: the build
    passes only if z is read before a, and its example runs before a is read."""
    marker = tmp_path / "z-ran"
    conf = f"""
        import time
        from pathlib import Path

        def wait_for_z(app, docname, source):
            if docname == "a":
                deadline = time.monotonic() + {WAIT_SECONDS}
                while not Path({str(marker)!r}).exists():
                    assert time.monotonic() < deadline, "page a was read before z ran"
                    time.sleep(0.05)

        def setup(app):
            app.connect("source-read", wait_for_z)
    """
    touch = f"from pathlib import Path\nPath({str(marker)!r}).touch()"
    pages = {"a": page("No examples here.\n"), "z": page(code_block(touch))}
    done = build(tmp_path, pages, conf)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 test\n    0 failures in tests" in (tmp_path / "out" / "output.txt").read_text()


def test_examples_start_only_when_the_ready_event_lets_them(tmp_path):
    """While the handler answers False they wait; at the end of the reading it is
    asked to wait until they may run."""
    asked = tmp_path / "asked-to-wait"
    conf = f"""
        from pathlib import Path

        def ready(app, wait):
            if wait:
                Path({str(asked)!r}).touch()
            return wait

        def setup(app):
            app.connect("parallel-doctest-ready", ready)
    """
    check = f"from pathlib import Path\nprint(Path({str(asked)!r}).exists())"
    pages = {"a": page("No examples here.\n"), "z": page(code_block(check, "True"))}
    done = build(tmp_path, pages, conf)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_warning_of_a_page_started_while_sphinx_reads_is_counted(tmp_path):
    """Sphinx holds back warnings while it reads; the page's process logs its own
    (an empty testcode block) at once, and the build counts them."""
    pages = {
        "a": page("No examples here.\n"),
        "z": page(code_block("print(1)", "1"), ".. testcode::\n"),
    }
    done = build(tmp_path, pages)
    assert "no code/output in testcode block" in done.stderr, done.stderr
    assert "z: 1 warning(s) running its examples" in done.stderr, done.stderr


def test_with_sphinx_reading_in_processes_each_page_runs_once(tmp_path):
    """With -j, Sphinx's reading processes (here with autodoc's events) start no
    page: the builder does, once."""
    runs = tmp_path / "runs"
    append = f"with open({str(runs)!r}, 'a') as runs:\n    runs.write('x')"
    documented = ".. autofunction:: textwrap.dedent\n"
    pages = {f"page{number}": page(code_block(append), documented) for number in range(8)}
    done = build(tmp_path, pages, "extensions.append('sphinx.ext.autodoc')", "-j", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert runs.read_text() == "x" * 8
