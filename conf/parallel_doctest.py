"""The doctest builder, with every page's examples running at the same time.

Sphinx's ``-b doctest`` runs the pages one after the other, and most of its time is
spent waiting for a server. This extension replaces it with a builder that forks one
process per page: each runs its page's examples as Sphinx would (the examples of a
page still run in order, sharing their names) and sends back its counts and its
report, which are printed page by page in the usual order. Forked processes share
the server the examples dispatch to.

A page's process starts as soon as the page is read and saved and the
``parallel-doctest-ready`` event lets it (a handler ``(app, wait)`` returns False
while what the examples need is not there yet, and waits for it when ``wait`` is
True), asked before each page is read and before each object autodoc documents:
the pages whose sources hold examples are read first, so their examples run while
Sphinx still reads the others (the API reference's autodoc takes most of the
reading). Warnings that the examples of such a page raise are logged at once by its
process, not held back until the reading ends.

If ``PARALLEL_DOCTEST_PAGES_READ`` names a file, the builder creates it before the
examples run, when Sphinx has saved what it read in its doctree folder: another
build (``build_docs.py``'s HTML build) can start from that instead of reading again.

A page whose examples run longer than :data:`PAGE_SECONDS` (or
``PARALLEL_DOCTEST_PAGE_SECONDS``) fails, with the traceback of where it was: a
stuck example fails the build instead of hanging it.
"""

from __future__ import annotations

import json
import logging as python_logging
import os
import signal
import sys
import traceback
from collections.abc import Set
from pathlib import Path

from sphinx.ext.doctest import DocTestBuilder
from sphinx.util import logging
from sphinx.util.console import bold
from sphinx.util.logging import NAMESPACE, MemoryHandler, WarningStreamHandler

logger = logging.getLogger(__name__)

#: Seconds a page's examples may take, all together (a page takes 20 s at most).
PAGE_SECONDS = 300

#: What, in a page's source, starts an example (only the order of reading depends on it).
EXAMPLE_MARKERS = ("testcode", "doctest", "testsetup", ">>> ")

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

    def init(self) -> None:
        super().init()
        #: Pages read and saved whose examples have not started, and those started.
        self._saved: list[str] = []
        self._running: dict[str, tuple[int, int]] = {}
        self._may_run = False
        # With -j, Sphinx reads in forked processes: only this one starts pages early.
        self._pid = os.getpid()
        # Sphinx holds back warnings while it reads; a page's process restores these.
        sphinx_logger = python_logging.getLogger(NAMESPACE)
        self._warning_handlers = [
            handler
            for handler in sphinx_logger.handlers
            if isinstance(handler, WarningStreamHandler)
        ]

    def start_saved_pages(self, wait: bool = False) -> None:
        """Start the examples of every page read and saved, if they may run now."""
        if not hasattr(os, "fork") or not self._saved or os.getpid() != self._pid:
            return
        if not self._may_run:
            ready = self.events.emit_firstresult("parallel-doctest-ready", wait)
            self._may_run = ready is not False
            if not self._may_run:
                return
            logger.info(bold("running tests..."))
        while self._saved:
            docname = self._saved.pop(0)
            self._running[docname] = self._fork(docname)

    def write_documents(self, docnames: Set[str]) -> None:
        if pages_read := os.environ.get("PARALLEL_DOCTEST_PAGES_READ"):
            Path(pages_read).touch()
        if not hasattr(os, "fork"):  # Windows: one page after another, as Sphinx does
            super().write_documents(docnames)
            return
        self._saved += sorted(set(docnames) - set(self._saved) - set(self._running))
        self.start_saved_pages(wait=True)
        running = {docname: self._running[docname] for docname in sorted(docnames)}
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
        sys.stdout.flush()  # else the child would print again what is still buffered
        sys.stderr.flush()
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns
            os.close(reader)
            self._test_in_child(docname, writer)
        os.close(writer)
        return pid, reader

    def _test_in_child(self, docname: str, writer: int) -> None:
        self._log_warnings_now()
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

    def _log_warnings_now(self) -> None:
        """In a page's process forked while Sphinx reads: warnings go to Sphinx's
        warning stream (counted, so ``-W`` fails the build), not to the buffer that
        the reading holds until it ends, which this process would never flush."""
        sphinx_logger = python_logging.getLogger(NAMESPACE)
        for handler in sphinx_logger.handlers[:]:
            if isinstance(handler, MemoryHandler):
                sphinx_logger.removeHandler(handler)
        for handler in self._warning_handlers:
            if handler not in sphinx_logger.handlers:
                sphinx_logger.addHandler(handler)

    def _add(self, docname: str, result: dict) -> None:
        for kind, text in result.get("report", []):
            (self._warn_out if kind == "warn" else self._out)(text)
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + result.get(name, 0))
        if result.get("warnings"):
            logger.warning("%s: %d warning(s) running its examples", docname, result["warnings"])


def _read_pages_with_examples_first(app, env, docnames: list[str]) -> None:
    if isinstance(app.builder, ParallelDocTestBuilder):
        docnames.sort(key=lambda docname: not _holds_examples(env.doc2path(docname)))


def _holds_examples(source: Path) -> bool:
    text = source.read_text(encoding="utf-8")
    return any(marker in text for marker in EXAMPLE_MARKERS)


def _note_saved(app, doctree) -> None:
    # Called once the page is parsed; Sphinx saves it before it reads the next one.
    if isinstance(app.builder, ParallelDocTestBuilder):
        app.builder._saved.append(app.env.docname)


def _start_saved_pages(app, *_) -> None:
    # Sphinx purges each page just before it reads it: the pages before it are saved.
    # Within a page, autodoc documents one object after another.
    if isinstance(app.builder, ParallelDocTestBuilder):
        app.builder.start_saved_pages()


def _start_saved_pages_within_autodoc(app, config) -> None:
    if "autodoc-process-docstring" in app.events.events:
        app.connect("autodoc-process-docstring", _start_saved_pages)


def setup(app) -> dict:
    app.setup_extension("sphinx.ext.doctest")
    app.add_builder(ParallelDocTestBuilder, override=True)
    app.add_event("parallel-doctest-ready")
    app.connect("env-before-read-docs", _read_pages_with_examples_first)
    app.connect("doctree-read", _note_saved)
    app.connect("env-purge-doc", _start_saved_pages)
    app.connect("config-inited", _start_saved_pages_within_autodoc)
    return {"parallel_read_safe": True}
