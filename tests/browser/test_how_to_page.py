"""The how-to page's listings: what they show, what their copy buttons copy, and
that the copied plugins work on a Covalent server: the small plugin where this
package is missing, ``timing.py`` and ``async_timing.py`` where it can be imported."""

import re
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.browser.how_to_page import (
    HOW_TO,
    PLUGIN_SECTIONS,
    SHORT_NAME_SECTION,
    WORKFLOW_SECTION,
    as_module,
    copy_listings,
    listing_showing,
    listings_of_parts,
    section_listings,
)
from tests.browser.listings import marked_parts
from tests.browser.reader_setup import run_workflow_with_copied_plugins
from tests.browser.site import REPOSITORY

SOURCES = REPOSITORY / "src" / "timing_executor"
DOCS_SRC = REPOSITORY / "docs_src"
RECORD = r"Node (\d+) in dispatch ([0-9a-f-]{36}) took \d+\.\d{6}s of CPU time\."
#: The modules timing.py builds on, which the page shows in full (a marked part each):
#: all of task_side, and server_side but for what only the SSH and Slurm executors use.
SUPPORT_MODULES = [
    *sorted(SOURCES.glob("task_side/*.py")),
    *(
        SOURCES / "server_side" / f"{name}.py"
        for name in ("records", "launchers", "task_runs", "reporting", "defaults")
    ),
]


def plugin_listings(page, module: str):
    """The listings of a plugin's section that show the parts of its source module."""
    parts = list(marked_parts(SOURCES / f"{module}.py").values())
    return listings_of_parts(section_listings(page, PLUGIN_SECTIONS[module]), parts)


def workflow_listing(page, section: str, script: str):
    """The listing of a section that shows ``docs_src/SCRIPT``."""
    return listing_showing(section_listings(page, section), (DOCS_SRC / script).read_text())


@pytest.fixture
def how_to(reader, site_url):
    reader.page.goto(site_url + HOW_TO, wait_until="networkidle")
    yield reader.page
    assert not reader.problems(), reader.problems()


@pytest.mark.parametrize("module", PLUGIN_SECTIONS)
def test_plugin_listings_show_the_source_parts_and_copy_exactly_them(how_to, module):
    """Every marked part of the module is shown, in order, and copied exactly."""
    parts = [part.rstrip("\n") for part in marked_parts(SOURCES / f"{module}.py").values()]
    listings = plugin_listings(how_to, module)
    assert [listing.shown.rstrip("\n") for listing in listings] == parts
    assert [listing.copied.rstrip("\n") for listing in listings] == parts


@pytest.mark.parametrize(
    ("section", "script"),
    [(WORKFLOW_SECTION, "workflow.py"), (SHORT_NAME_SECTION, "short_name.py")],
)
def test_workflow_listings_show_and_copy_the_whole_script(how_to, section, script):
    source = (DOCS_SRC / script).read_text(encoding="utf-8")
    listing = listing_showing(section_listings(how_to, section), source)
    assert listing.copied.rstrip("\n") == source.rstrip("\n")


def test_the_modules_timing_py_builds_on_are_shown_and_copied_whole(how_to):
    """Every marked part of task_side and server_side is on the page, once, and its
    copy button copies exactly it."""
    parts = [part.rstrip("\n") for path in SUPPORT_MODULES for part in marked_parts(path).values()]
    assert len(parts) >= 11
    listings = copy_listings(how_to, "article div.highlight")
    for part in parts:
        (listing,) = (item for item in listings if item.shown.rstrip("\n") == part)
        assert listing.copied.rstrip("\n") == part


def test_every_copy_button_copies_only_the_code(how_to):
    listings = copy_listings(how_to, "article div.highlight")
    assert len(listings) >= 15
    wrong = [
        f"listing:\n{listing.shown}\ncopied:\n{listing.copied}\nexpected:\n{listing.code_shown()}"
        for listing in listings
        if listing.copied.rstrip("\n") != listing.code_shown().rstrip("\n")
        or re.search(r"^(>>>|\.\.\.|\$) ", listing.copied, re.MULTILINE)
    ]
    assert not wrong, "copy buttons that copy more or less than the code:\n" + "\n".join(wrong)


def test_copied_timing_plugin_runs_the_workflow_where_the_package_is(
    how_to, reader_python, tmp_path
):
    """The page's three listings of timing.py, saved as a plugin of the reader's own,
    run the workflow on a server that can import the package."""
    plugin = as_module(plugin_listings(how_to, "timing"))
    workflow = workflow_listing(how_to, WORKFLOW_SECTION, "workflow.py")
    run = run_workflow_with_copied_plugins(
        reader_python,
        tmp_path / "reader-home",
        {"my_timing": plugin},
        workflow.copied,
        with_package=True,
    )
    assert run.returncode == 0, run.stderr
    status, *printed_records = run.stdout.splitlines()
    assert status == "COMPLETED: 6"
    records = (run.folder / "timing.log").read_text().splitlines()
    assert printed_records == records
    matches = [re.fullmatch(RECORD, line) for line in records]
    assert all(matches), records
    assert sorted(int(match[1]) for match in matches) == [0, 3]
    assert len({match[2] for match in matches}) == 1


def test_copied_async_plugin_runs_the_short_name_workflow_where_the_package_is(
    how_to, reader_python, tmp_path
):
    plugins = {"async_timing": as_module(plugin_listings(how_to, "async_timing"))}
    workflow = workflow_listing(how_to, SHORT_NAME_SECTION, "short_name.py")
    home = tmp_path / "reader-home"
    run = run_workflow_with_copied_plugins(
        reader_python, home, plugins, workflow.copied, with_package=True
    )
    assert run.returncode == 0, run.stderr
    status, *printed_records = run.stdout.splitlines()
    assert status == "COMPLETED: 6"
    records = Path(home / ".cache" / "covalent" / "timing.log").read_text().splitlines()
    assert printed_records == records
    assert sorted(int(re.fullmatch(RECORD, line)[1]) for line in records) == [0, 3]


#: What the page's download links must give: file name -> its source.
DOWNLOADS = {
    "small_timing.py": DOCS_SRC / "plugins" / "small_timing.py",
    "timing.py": SOURCES / "timing.py",
}

#: Runs the downloaded small_timing.py, on a server without this package.
SMALL_PLUGIN_WORKFLOW = """
import covalent as ct


@ct.electron(executor="small_timing")
def add(x, y):
    return x + y


@ct.lattice
def workflow(x, y):
    return add(x, y)


result = ct.get_result(ct.dispatch(workflow)(1, 2), wait=True)
print(result.status, result.result)
"""

#: Runs the downloaded timing.py, saved as my_timing.py, where the package can be imported.
TIMING_PLUGIN_WORKFLOW = """
import covalent as ct
from covalent.executor import TimingExecutor

timing = TimingExecutor("timing.log")


@ct.electron(executor=timing)
def multiply(x, y):
    print("multiplying")
    return x * y


@ct.electron(executor=timing)
def give_up():
    import sys

    sys.exit(3)


@ct.lattice
def workflow(x, y):
    return multiply(x, y), give_up()


result = ct.get_result(ct.dispatch(workflow)(2, 3), wait=True)
print(result.status)
for node in map(result.get_node_result, range(4)):
    print(f"{node['node_name']} {node['status']} {node['stdout']!r}")
"""


def downloads(page) -> dict[str, bytes]:
    """Each download link of the page: the file name it offers -> the bytes it gives."""
    links = page.locator("a.download")
    files = {}
    for index in range(links.count()):
        href = links.nth(index).get_attribute("href")
        response = page.request.get(urljoin(page.url, href))
        assert response.ok, href
        files[href.rsplit("/", 1)[-1]] = response.body()
    return files


def test_download_links_give_the_complete_modules(how_to):
    assert downloads(how_to) == {name: path.read_bytes() for name, path in DOWNLOADS.items()}


def test_downloaded_small_plugin_works_without_the_package(how_to, reader_python, tmp_path):
    plugin = downloads(how_to)["small_timing.py"].decode("utf-8")
    home = tmp_path / "reader-home"
    run = run_workflow_with_copied_plugins(
        reader_python, home, {"small_timing": plugin}, SMALL_PLUGIN_WORKFLOW
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["COMPLETED 3"]
    assert re.fullmatch(
        r"Node 0 in dispatch \S+ took \d+\.\d{6}s\.\n", (home / "timing.log").read_text()
    )


def test_downloaded_timing_module_works_as_a_plugin_where_the_package_is(
    how_to, reader_python, tmp_path
):
    plugin = downloads(how_to)["timing.py"].decode("utf-8")
    run = run_workflow_with_copied_plugins(
        reader_python,
        tmp_path / "reader-home",
        {"my_timing": plugin},
        TIMING_PLUGIN_WORKFLOW,
        with_package=True,
    )
    assert run.returncode == 0, run.stderr
    status, *nodes = run.stdout.splitlines()
    assert status == "FAILED"  # give_up's node only
    assert "multiply COMPLETED 'multiplying\\n'" in nodes
    assert "give_up FAILED None" in nodes
    timing_records = (run.folder / "timing.log").read_text().splitlines()
    assert len(timing_records) == 2
    assert any("failed (SystemExit)" in line for line in timing_records)
