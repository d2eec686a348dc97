"""Serve the built site on 127.0.0.1 and open it in Debian's Chromium like a reader."""

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

REPOSITORY = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
#: Headless, no sandbox (we run as root) and nothing that talks to the network on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        """Keep the test output free of one line per request."""


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 and yield its base URL (with ``/``)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def launch_chromium():
    """Yield a Playwright ``Browser`` running ``/usr/bin/chromium`` headless."""
    from playwright.sync_api import sync_playwright  # only the browser env installs it

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            chromium_sandbox=False,
            args=CHROMIUM_ARGS,
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class ReaderPage:
    """A browser page and what went wrong while it was used."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.console_errors + self.failed_requests


@contextmanager
def new_reader_page(browser, site_url: str, viewport: dict = DESKTOP, **options):
    """Open a page that may read the clipboard and reaches nothing but ``site_url``.

    Console errors, uncaught exceptions, failed or 4xx/5xx responses and any
    request to another host are recorded in the ``ReaderPage``.
    """
    context = browser.new_context(viewport=viewport, **options)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site_url.rstrip("/"))
    reader = ReaderPage(page=context.new_page())
    site_host = urlsplit(site_url).netloc

    def only_this_site(route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == site_host:
            route.continue_()
        else:
            reader.failed_requests.append(f"request outside the site (blocked): {url}")
            route.abort()

    def on_console(message) -> None:
        if message.type == "error":
            reader.console_errors.append(f"console error: {message.text} ({message.location})")

    def on_response(response) -> None:
        if response.status >= 400:
            reader.failed_requests.append(f"HTTP {response.status}: {response.url}")

    context.route("**/*", only_this_site)
    reader.page.on("console", on_console)
    reader.page.on("pageerror", lambda error: reader.console_errors.append(f"page error: {error}"))
    reader.page.on("response", on_response)

    def on_request_failed(request) -> None:
        if urlsplit(request.url).netloc == site_host:
            reader.failed_requests.append(f"request failed: {request.url} ({request.failure})")

    reader.page.on("requestfailed", on_request_failed)
    try:
        yield reader
    finally:
        context.close()
