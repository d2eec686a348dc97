"""The how-to page's listings: what they show, what their copy buttons copy, and
that the copied plugin works on a Covalent server that lacks this package."""

import re
from pathlib import Path

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


def plugin_listings(page, module: str):
    """The listings of a plugin's section that show the parts of its source module."""
    parts = list(marked_parts(SOURCES / f"{module}.py").values())
    return listings_of_parts(section_listings(page, PLUGIN_SECTIONS[module]), parts)


def listings_by_part(page, module: str) -> dict:
    """Map each marked part's name to the listing on the page that shows it."""
    names = marked_parts(SOURCES / f"{module}.py")
    return dict(zip(names, plugin_listings(page, module), strict=True))


def single_file_async_plugin(page) -> str:
    """The async plugin as the page says to copy it into a plugin folder: the helper
    import replaced by the imports and helpers listings of timing.py."""
    sync, async_ = listings_by_part(page, "timing"), listings_by_part(page, "async_timing")
    return as_module(
        [
            async_["imports"],
            sync["imports"],
            sync["helpers"],
            async_["plugin-attributes"],
            async_["executor"],
        ]
    )


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


def test_copied_timing_plugin_runs_the_workflow_without_the_package(
    how_to, reader_python, tmp_path
):
    plugin = as_module(plugin_listings(how_to, "timing"))
    workflow = workflow_listing(how_to, WORKFLOW_SECTION, "workflow.py")
    run = run_workflow_with_copied_plugins(
        reader_python, tmp_path / "reader-home", {"timing": plugin}, workflow.copied
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


def test_copied_async_plugin_runs_the_short_name_workflow_without_the_package(
    how_to, reader_python, tmp_path
):
    plugins = {
        "timing": as_module(plugin_listings(how_to, "timing")),
        "async_timing": single_file_async_plugin(how_to),
    }
    workflow = workflow_listing(how_to, SHORT_NAME_SECTION, "short_name.py")
    home = tmp_path / "reader-home"
    run = run_workflow_with_copied_plugins(reader_python, home, plugins, workflow.copied)
    assert run.returncode == 0, run.stderr
    status, *printed_records = run.stdout.splitlines()
    assert status == "COMPLETED: 6"
    records = Path(home / ".cache" / "covalent" / "timing.log").read_text().splitlines()
    assert printed_records == records
    assert sorted(int(re.fullmatch(RECORD, line)[1]) for line in records) == [0, 3]
