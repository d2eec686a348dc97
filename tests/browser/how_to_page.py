"""Read the how-to page's listings the way a reader does: look at them, press copy."""

import re
from dataclasses import dataclass

HOW_TO = "how-to/create-custom-executor.html"
#: Sections of the how-to page whose own listings, one after the other, make a plugin module.
PLUGIN_SECTIONS = {
    "timing": "timingexecutor-each-task-in-a-process-of-its-own",
    "async_timing": "the-async-aware-variant",
}
SMALL_PLUGIN_SECTION = "the-smallest-plugin-that-works"
WORKFLOW_SECTION = "use-it-in-a-workflow"
SHORT_NAME_SECTION = "instance-or-short-name"
_PROMPT = re.compile(r"^(>>> |\.\.\. |\$ )")
#: The text a reader sees in a ``<pre>``, less the line numbers Sphinx may put in it.
_TEXT_WITHOUT_LINE_NUMBERS = """pre => {
    const copy = pre.cloneNode(true);
    copy.querySelectorAll('.linenos').forEach(number => number.remove());
    return copy.textContent;
}"""


@dataclass(frozen=True)
class Listing:
    """One code block as shown on the page and as its copy button copies it."""

    shown: str
    copied: str

    def code_shown(self) -> str:
        """What a reader would type: the prompt lines without their prompts, if any."""
        lines = self.shown.splitlines()
        if not any(_PROMPT.match(line) for line in lines):
            return self.shown
        return "".join(_PROMPT.sub("", line) + "\n" for line in lines if _PROMPT.match(line))


def copy_listings(page, selector: str) -> list[Listing]:
    """Press the copy button of every code block matching ``selector``, in page order."""
    listings = []
    blocks = page.locator(selector)
    for index in range(blocks.count()):
        block = blocks.nth(index)
        block.scroll_into_view_if_needed()
        block.hover()
        page.evaluate("navigator.clipboard.writeText('')")
        block.locator("button.copybtn").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        shown = block.locator("pre").evaluate(_TEXT_WITHOUT_LINE_NUMBERS)
        listings.append(Listing(shown=shown, copied=copied))
    return listings


def section_listings(page, section_id: str) -> list[Listing]:
    """The listings directly in a section of the page (not in its subsections)."""
    return copy_listings(page, f"section#{section_id} > div[class*='highlight-'] div.highlight")


def listings_of_parts(listings: list[Listing], parts: list[str]) -> list[Listing]:
    """The listings that show one of ``parts`` (a source's marked parts), in page order."""
    wanted = {part.rstrip("\n") for part in parts}
    return [listing for listing in listings if listing.shown.rstrip("\n") in wanted]


def listing_showing(listings: list[Listing], text: str) -> Listing:
    """The one listing that shows ``text``."""
    (listing,) = (item for item in listings if item.shown.rstrip("\n") == text.rstrip("\n"))
    return listing


def as_module(listings: list[Listing]) -> str:
    """The copied listings put one after the other in one file, as the page says to."""
    return "\n\n".join(listing.copied.rstrip("\n") for listing in listings) + "\n"
