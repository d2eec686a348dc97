"""Run every example of the documentation (docs/**/*.md) under pytest, in page order.

The Sphinx doctest build (``tox -e docs``) runs the same examples; this test makes
the suite cover them too. It understands the directives the pages use: ``{doctest}``
and ``{testsetup}``/``{testcode}`` with the ``{testoutput}`` that follows, compared
with ``ELLIPSIS`` as ``sphinx.ext.doctest`` does. Examples dispatch to the session's
Covalent server.
"""

import contextlib
import doctest
import io
import sys
from pathlib import Path

import pytest

sybil = pytest.importorskip("sybil", reason="sybil comes with the docs extra (tox -e docs)")
from sybil.parsers.myst import DocTestDirectiveParser  # noqa: E402
from sybil.parsers.myst.lexers import DirectiveLexer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO_ROOT / "docs").glob("**/*.md"))
OPTION_FLAGS = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL
OUTPUT_KEY = "__testcode_output__"
sys.path.insert(0, str(REPO_ROOT / "conf"))  # doc_examples, which hidden examples import


def execute_testcode(example) -> None:
    """Run a ``testsetup``/``testcode`` block and keep what it printed."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(example.parsed, example.path, "exec"), example.namespace)
    example.namespace[OUTPUT_KEY] = output.getvalue()


def compare_testoutput(example) -> str | None:
    """Compare a ``testoutput`` block with what the preceding ``testcode`` printed."""
    got = example.namespace.pop(OUTPUT_KEY, None)
    if got is None:
        return "a testoutput block with no testcode block before it"
    checker = doctest.OutputChecker()
    if checker.check_output(example.parsed, got, OPTION_FLAGS):
        return None
    return checker.output_difference(doctest.Example("", example.parsed), got, OPTION_FLAGS)


def parse_testcode_directives(document):
    """Yield a region per ``testsetup``, ``testcode`` and ``testoutput`` directive."""
    for region in DirectiveLexer("testsetup|testcode|testoutput")(document):
        directive = region.lexemes["directive"]
        region.parsed = str(region.lexemes["source"])
        region.evaluator = compare_testoutput if directive == "testoutput" else execute_testcode
        yield region


PARSERS = [DocTestDirectiveParser(optionflags=OPTION_FLAGS), parse_testcode_directives]


@pytest.mark.server
@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_page_examples_run(covalent_server, page):
    document = sybil.Sybil(parsers=PARSERS).parse(page)
    examples = list(document)
    if not examples:
        pytest.skip("this page has no examples")
    document.namespace["__name__"] = "__docs_example__"
    for example in examples:
        example.evaluate()
