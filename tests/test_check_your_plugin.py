"""The "Check your plugin" page's example project (docs_src/check_your_plugin), run
as a plugin author runs it, each run by pytest in a process of its own: the guide's
in-thread small plugin fails exactly the cases its declared gaps name, and the
session survives the tasks that end its server; with the gaps declared, and for the
fix (TimingExecutor), everything passes and nothing is left behind."""

import importlib.util
import re

import pytest

from covalent_plugin_testing.conformance import case_names
from tests.test_plugin_testing_kit import DOCS_SRC, assert_passed_leaving_nothing, run_pytest

pytestmark = pytest.mark.server
PROJECT = DOCS_SRC / "check_your_plugin"


def declared_gaps() -> dict[str, str]:
    """The ``known_gaps`` of the example's ``test_small_timing_gaps.py``."""
    path = PROJECT / "test_small_timing_gaps.py"
    spec = importlib.util.spec_from_file_location("small_timing_gaps", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TestSmallTimingWithItsGaps.known_gaps


def test_the_in_thread_plugin_fails_exactly_its_gaps_and_the_session_survives(tmp_path):
    done = run_pytest(PROJECT, tmp_path, "-rf", "test_small_timing.py")
    failed = set(
        re.findall(r"^FAILED test_small_timing\.py::TestSmallTiming::(\w+)", done.stdout, re.M)
    )
    assert failed == set(declared_gaps()), done.stdout[-3000:]
    passed = len(case_names()) - len(failed)
    assert re.search(rf"\b{len(failed)} failed, {passed} passed\b", done.stdout), done.stdout
    for line in re.findall(r"^FAILED .*$", done.stdout, re.M):
        assert "The guide explains the fix: docs/" in line or "known gap" in line, line


def test_with_its_gaps_declared_and_for_the_fix_everything_passes(tmp_path):
    done = run_pytest(PROJECT, tmp_path, "test_small_timing_gaps.py", "test_timing.py")
    cases = len(case_names())
    xfailed = len(declared_gaps())
    assert f"{xfailed} xfailed" in done.stdout, done.stdout
    assert_passed_leaving_nothing(done, tmp_path, 2 * cases - xfailed)
