"""The doctest builder, with every page's examples running at the same time.

Sphinx's ``-b doctest`` runs the pages one after the other, and most of its time is
spent waiting for a server. This extension replaces it with a builder that, once
Sphinx has read the pages, forks one process per page: each runs its page's examples
as Sphinx would (the examples of a page still run in order, sharing their names) and
sends back its counts and its report, which are printed page by page in the usual
order. Forked processes share the server the examples dispatch to.

If ``PARALLEL_DOCTEST_PAGES_READ`` names a file, the builder creates it before the
examples run, when Sphinx has saved what it read in its doctree folder: another
build (``build_docs.py``'s HTML build) can start from that instead of reading again.

A page whose examples run longer than :data:`PAGE_SECONDS` (or
``PARALLEL_DOCTEST_PAGE_SECONDS``) fails, with the traceback of where it was: a
stuck example fails the build instead of hanging it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Set
from pathlib import Path

from sphinx.ext.doctest import DocTestBuilder
from sphinx.util import logging
from sphinx.util.console import bold

logger = logging.getLogger(__name__)

#: Seconds a page's examples may take, all together (a page takes 20 s at most).
PAGE_SECONDS = 300

_COUNTS = (
    "total_tries",
    "total_failures",
    "setup_tries",
    "setup_failures",
    "cleanup_tries",
    "cleanup_failures",
)


class ParallelDocTestBuilder(DocTestBuilder):
    """``-b doctest`` with one process per page, all at once."""

    def write_documents(self, docnames: Set[str]) -> None:
        if pages_read := os.environ.get("PARALLEL_DOCTEST_PAGES_READ"):
            Path(pages_read).touch()
        if not hasattr(os, "fork"):  # Windows: one page after another, as Sphinx does
            super().write_documents(docnames)
            return
        logger.info(bold("running tests..."))
        sys.stdout.flush()
        sys.stderr.flush()
        running = {docname: self._fork(docname) for docname in sorted(docnames)}
        for docname, (pid, reader) in running.items():
            with os.fdopen(reader) as pipe:
                sent = pipe.read()
            _, status = os.waitpid(pid, 0)
            if status or not sent:
                code = os.waitstatus_to_exitcode(status)
                how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
                died = f"\n{docname}: the process running its examples {how}\n"
                sent = json.dumps({"report": [("warn", died)], "total_failures": 1})
            self._add(docname, json.loads(sent))

    def _fork(self, docname: str) -> tuple[int, int]:
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns
            os.close(reader)
            self._test_in_child(docname, writer)
        os.close(writer)
        return pid, reader

    def _test_in_child(self, docname: str, writer: int) -> None:
        report: list[tuple[str, str]] = []
        self._out = lambda text: report.append(("out", text))  # type: ignore[method-assign]
        self._warn_out = lambda text: report.append(("warn", text))  # type: ignore[method-assign]
        before = {name: getattr(self, name) for name in _COUNTS}
        warnings_before = self._app._warncount
        seconds = int(os.environ.get("PARALLEL_DOCTEST_PAGE_SECONDS", PAGE_SECONDS))

        def send_and_exit() -> None:
            counts = {name: getattr(self, name) - before[name] for name in _COUNTS}
            counts["warnings"] = self._app._warncount - warnings_before
            with os.fdopen(writer, "w") as pipe:
                pipe.write(json.dumps({"report": report, **counts}))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

        def too_long(_signal: int, frame) -> None:
            # The page ends here: an exception would only fail the running example
            # (doctest catches it), and the next one could be stuck as well.
            where = "".join(traceback.format_stack(frame))
            timeout = f"TimeoutError: {docname}: its examples ran longer than {seconds} s"
            report.append(("warn", f"{where}{timeout}\n"))
            self.total_failures += 1
            send_and_exit()

        signal.signal(signal.SIGALRM, too_long)
        signal.alarm(seconds)
        try:
            self.test_doc(docname, self.env.get_doctree(docname))
        except BaseException:  # reported to the parent as a failure
            report.append(("warn", traceback.format_exc()))
            self.total_failures += 1
        signal.alarm(0)
        send_and_exit()

    def _add(self, docname: str, result: dict) -> None:
        for kind, text in result.get("report", []):
            (self._warn_out if kind == "warn" else self._out)(text)
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + result.get(name, 0))
        if result.get("warnings"):
            logger.warning("%s: %d warning(s) running its examples", docname, result["warnings"])


def setup(app) -> dict:
    app.setup_extension("sphinx.ext.doctest")
    app.add_builder(ParallelDocTestBuilder, override=True)
    return {"parallel_read_safe": True}
