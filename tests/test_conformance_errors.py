"""What a plugin author meets when the conformance suite cannot test their executor,
or their declared gaps are wrong: each run by pytest in a process of its own."""

import re
from pathlib import Path

import pytest

from covalent_plugin_testing.conformance import case_names
from tests.test_plugin_testing_kit import run_pytest

pytestmark = pytest.mark.server
REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "conformance.md"

BAD_FIXTURES = """
import pytest

from covalent_plugin_testing.conformance import ExecutorConformance


class TestNotAnExecutor(ExecutorConformance):
    @pytest.fixture
    def executor(self):
        return 42


class TestUnknownShortName(ExecutorConformance):
    @pytest.fixture
    def executor(self):
        return "no_such_executor"


class TestConstructorFails(ExecutorConformance):
    @pytest.fixture
    def executor(self):
        from covalent.executor import TimingExecutor

        return TimingExecutor("/dev/null/records.log")


class TestUnknownGap(ExecutorConformance):
    known_gaps = {"test_no_such_case": "a typo"}

    @pytest.fixture
    def executor(self):
        return "timing"
"""

CLOSED_GAP = """
import pytest

from covalent_plugin_testing.conformance import ExecutorConformance


class TestClosedGap(ExecutorConformance):
    known_gaps = {"test_the_add_multiply_workflow_returns_its_result": "it used to fail"}

    @pytest.fixture
    def executor(self):
        return "timing"
"""


def project(tmp_path: Path, test_module: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "conftest.py").write_text('pytest_plugins = ["covalent_plugin_testing"]\n')
    (folder / "test_it.py").write_text(test_module)
    return folder


def test_a_bad_executor_fixture_is_one_error_naming_it_then_skips(tmp_path):
    done = run_pytest(project(tmp_path, BAD_FIXTURES), tmp_path, "-rEs")
    out = done.stdout
    classes = (
        "TestNotAnExecutor",
        "TestUnknownShortName",
        "TestConstructorFails",
        "TestUnknownGap",
    )
    errors = re.findall(r"^ERROR test_it\.py::(\w+)::(\w+)", out, re.M)
    assert [cls for cls, _ in errors] == list(classes), out
    assert {case for _, case in errors} == {case_names()[0]}, out
    assert "4 errors" in out and f"{4 * (len(case_names()) - 1)} skipped" in out, out
    assert "the executor fixture gave 42 (a int)" in out
    assert "the executor fixture gave 'no_such_executor', which is not the short name" in out
    assert "the executor fixture raised" in out and "/dev/null/records.log" in out
    assert "known_gaps names cases the suite does not have: ['test_no_such_case']" in out
    assert "Traceback" not in out


def test_a_declared_gap_that_passes_fails_the_run(tmp_path):
    done = run_pytest(project(tmp_path, CLOSED_GAP), tmp_path, "-k", "add_multiply", "-rf")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout
    assert "[XPASS(strict)] known gap: it used to fail" in done.stdout, done.stdout


def test_the_reference_page_describes_every_case():
    headings = re.findall(r"^### `(test_\w+)`$", REFERENCE.read_text(), re.M)
    assert headings == case_names()


def slug(heading: str) -> str:
    """The anchor MyST gives a heading (``myst_heading_anchors``)."""
    words = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return words.replace(" ", "-")


def test_every_section_a_failure_names_exists():
    from covalent_plugin_testing.conformance.guide import SECTIONS

    root = REFERENCE.parents[2]
    for target in SECTIONS.values():
        page, anchor = target.split("#")
        headings = re.findall(r"^#+ (.+)$", (root / page).read_text(), re.M)
        assert anchor in map(slug, headings), target
