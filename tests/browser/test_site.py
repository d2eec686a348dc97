"""Every page of the built site, opened in Chromium as a reader opens it."""

from tests.browser.how_to_page import HOW_TO, PLUGIN_SECTIONS
from tests.browser.links import COLLECT_REFERENCES, broken_internal_references, site_pages
from tests.browser.site import PHONE, new_reader_page


def test_every_page_loads_without_console_errors_or_broken_links(reader, site, site_url):
    pages = site_pages(site)
    assert "index.html" in pages
    problems = []
    for page_path in pages:
        response = reader.page.goto(site_url + page_path, wait_until="load")
        reader.page.wait_for_load_state("networkidle")
        references = reader.page.evaluate(COLLECT_REFERENCES)
        broken = broken_internal_references(
            site, site_url, references["links"] + references["assets"]
        )
        broken += [f"image not shown: {src}" for src in references["brokenImages"]]
        if response.status != 200:
            broken.append(f"HTTP {response.status}")
        problems += [f"{page_path}: {problem}" for problem in broken + reader.problems()]
        reader.console_errors.clear()
        reader.failed_requests.clear()
    assert not problems, "\n".join(problems)


def test_search_finds_timing_executor(reader, site_url):
    reader.page.goto(site_url + "search.html?q=TimingExecutor")
    results = reader.page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=30_000)
    hrefs = [link.get_attribute("href") for link in results.all()]
    assert any(HOW_TO in href for href in hrefs), hrefs
    assert not reader.problems(), reader.problems()


def test_screenshots_of_the_how_to_page(browser, site_url, screenshots):
    """Desktop and phone screenshots (first screen and whole page) under build/screenshots/."""
    with new_reader_page(browser, site_url) as desktop:
        desktop.page.goto(site_url + HOW_TO, wait_until="networkidle")
        desktop.page.screenshot(path=screenshots / "how-to-desktop.png")
        desktop.page.screenshot(path=screenshots / "how-to-desktop-full.png", full_page=True)
        section = PLUGIN_SECTIONS["timing"]
        listing = desktop.page.locator(f"section#{section} div.highlight").first
        listing.hover()
        listing.screenshot(path=screenshots / "how-to-listing-with-copy-button.png")
        assert not desktop.problems(), desktop.problems()
    with new_reader_page(
        browser, site_url, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    ) as phone:
        phone.page.goto(site_url + HOW_TO, wait_until="networkidle")
        phone.page.screenshot(path=screenshots / "how-to-phone.png")
        phone.page.screenshot(path=screenshots / "how-to-phone-full.png", full_page=True)
        page_width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= PHONE["width"], f"the page is {page_width}px wide on a phone"
        assert not phone.problems(), phone.problems()
    for name in ("how-to-desktop", "how-to-desktop-full", "how-to-phone", "how-to-phone-full"):
        assert (screenshots / f"{name}.png").stat().st_size > 10_000


#: Blocks of code (not of program output) whose text is wider than the block.
OVERFLOWING_BLOCKS = """
() => [...document.querySelectorAll(
        'div[class*="highlight-python"] pre, div.highlight-toml pre, div.highlight-ini pre')]
    .filter((pre) => pre.scrollWidth > pre.clientWidth + 1)
    .map((pre) => pre.innerText.split("\\n").reduce((a, b) => (b.length > a.length ? b : a)))
"""


def test_no_code_block_scrolls_sideways_on_a_desktop(reader, site, site_url):
    """Listings and examples fit furo's content column at a desktop width; what a
    program prints (output, console) may be wider, as in a terminal."""
    wide = []
    for page_path in site_pages(site):
        reader.page.goto(site_url + page_path, wait_until="load")
        longest_lines = reader.page.evaluate(OVERFLOWING_BLOCKS)
        wide += [f"{page_path}: {len(line)} characters: {line}" for line in longest_lines]
    assert not wide, "\n".join(wide)


def test_no_page_shows_a_path_of_the_machine_that_built_it(site):
    """Defaults read ``~/.cache/covalent/timing.log``, never the build's temporary home."""
    leaks = [
        page_path
        for page_path in site_pages(site)
        if "timing-executor-docs-" in (site / page_path).read_text()
    ]
    assert not leaks, leaks
