"""Fixtures for testing the built site in Debian's Chromium, as a reader uses it.

These tests need the ``browser`` tox env: Playwright, the HTML that env builds and
a second virtual environment holding Covalent without this package. The env sets
``TIMING_EXECUTOR_BROWSER_TESTS=1``; anywhere else (the ``py`` env's plain
``pytest``) this folder is not collected, because ``tox`` runs it in the
``browser`` env. Without Chromium at ``/usr/bin/chromium`` the tests are skipped
with a message saying how to install it, except under CI, which installs it
(``.ci/run``) and so fails instead.

``TIMING_EXECUTOR_SITE`` points at another built site than ``build/html``;
``TIMING_EXECUTOR_READER_VENV`` says where the Covalent-only venv is kept.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.site import (
    CHROMIUM,
    REPOSITORY,
    launch_chromium,
    new_reader_page,
    serve_folder,
)

ENABLED = os.environ.get("TIMING_EXECUTOR_BROWSER_TESTS") == "1"
SITE = Path(os.environ.get("TIMING_EXECUTOR_SITE", REPOSITORY / "build" / "html"))
SCREENSHOTS = REPOSITORY / "build" / "screenshots"


_left_to_the_browser_env: list[str] = []


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave this folder to the ``browser`` tox env (see the module docstring)."""
    if not ENABLED and collection_path.name.startswith("test_"):
        _left_to_the_browser_env.append(collection_path.name)
        return True
    return None


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which browser test modules were left out, and where they run."""
    if _left_to_the_browser_env:
        terminalreporter.write_line(
            f"tests/browser ({', '.join(sorted(_left_to_the_browser_env))}) not collected here: "
            "they run in `tox -e browser` (or set TIMING_EXECUTOR_BROWSER_TESTS=1 "
            "where Playwright is installed)."
        )


@pytest.fixture(scope="session")
def site() -> Path:
    """The built HTML site (``sphinx-build -c conf docs build/html``)."""
    if not (SITE / "index.html").is_file():
        pytest.fail(f"No built site at {SITE}: run `tox -e browser`, which builds it first.")
    return SITE


@pytest.fixture(scope="session")
def site_url(site: Path) -> Iterator[str]:
    """The site served over HTTP on 127.0.0.1."""
    with serve_folder(site) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    if not CHROMIUM.exists():
        missing = f"Chromium is not installed at {CHROMIUM}"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}, but CI must have it: .ci/run installs it with apt-get.")
        pytest.skip(f"{missing}: `apt-get install chromium` (as .ci/run does) to run these.")
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def reader(browser, site_url):
    """A fresh page at desktop size whose console errors and failed requests are kept."""
    with new_reader_page(browser, site_url) as reader_page:
        yield reader_page


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where screenshots for a person to look at are written."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def reader_python(covalent_only) -> str:
    """The Python of a venv with Covalent only, like a reader's without this package.

    ``TIMING_EXECUTOR_READER_VENV`` chooses where it lives (tox keeps it between
    runs); otherwise it is made in a temporary folder.
    """
    return covalent_only
