"""The scorecard's parts that need no executor: the verdicts read from a real JUnit
report of pytest, and the docs build's check that the committed table
(docs/reference/scorecard.json, from ``tox -e scorecard``) has the suite's current
cases."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from sphinx.errors import ExtensionError

from covalent_plugin_testing.conformance import case_names
from tests.scorecard.run import ROWS, SCORECARD, verdicts
from tests.test_plugin_testing_kit import DOCS_SRC

CONF = DOCS_SRC.parent / "conf" / "scorecard_table.py"

CASES = """
import pytest
from covalent_plugin_testing.conformance.harness import fail


def test_passes():
    pass


def test_fails_as_a_case_does():
    fail("ct.cancel did not stop the running task", "the task ran on for 12 s", "cancel")


@pytest.fixture
def broken():
    raise RuntimeError("the constructor refused port 0")


def test_errors(broken):
    pass
"""


def scorecard_table():
    spec = importlib.util.spec_from_file_location("scorecard_table", CONF)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verdicts_are_read_from_pytests_junit_report(tmp_path):
    (tmp_path / "test_cases.py").write_text(CASES)
    report = tmp_path / "report.xml"
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=tmp_path, env=env, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    assert verdicts(report) == {
        "test_passes": "passes",
        "test_fails_as_a_case_does": (
            "fails: ct.cancel did not stop the running task: the task ran on for 12 s."
        ),
        "test_errors": (
            'fails: failed on setup with "RuntimeError: the constructor refused port 0"'
        ),
    }


def test_the_committed_scorecard_has_every_row_and_the_suites_cases():
    scorecard = scorecard_table().checked_scorecard()
    assert scorecard["cases"] == case_names()
    assert [row["name"] for row in scorecard["rows"]] == list(ROWS)


@pytest.mark.parametrize("change", ["a case gone", "a row without a case"])
def test_a_scorecard_that_differs_from_the_suite_fails_the_docs_build(tmp_path, change):
    scorecard = json.loads(SCORECARD.read_text())
    if change == "a case gone":
        scorecard["cases"] = scorecard["cases"][1:]
    else:
        scorecard["rows"][0]["verdicts"].pop(case_names()[0])
    path = tmp_path / "scorecard.json"
    path.write_text(json.dumps(scorecard))
    with pytest.raises(ExtensionError, match=r"Run `tox -e scorecard`"):
        scorecard_table().checked_scorecard(path)
