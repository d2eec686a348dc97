"""Find the pages of the built site and check the links and images on each."""

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: Folders of the built site that hold assets, not pages.
ASSET_FOLDERS = {"_static", "_sources", "_images", "_downloads", ".doctrees"}

#: Every link, image, stylesheet and script of the page, resolved to absolute URLs.
COLLECT_REFERENCES = """() => ({
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    assets: [
        ...[...document.querySelectorAll('link[href]')].map(l => l.href),
        ...[...document.querySelectorAll('script[src]')].map(s => s.src),
        ...[...document.querySelectorAll('img')].map(i => i.currentSrc || i.src),
    ],
    brokenImages: [...document.querySelectorAll('img')]
        .filter(i => !(i.complete && i.naturalWidth > 0))
        .map(i => i.currentSrc || i.src),
})"""


def site_pages(site: Path) -> list[str]:
    """Every HTML page of the built site, as paths relative to its root."""
    return sorted(
        path.relative_to(site).as_posix()
        for path in site.rglob("*.html")
        if not ASSET_FOLDERS.intersection(path.relative_to(site).parts)
    )


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for name, value in attrs:
            if name == "id" or (tag == "a" and name == "name"):
                self.anchors.add(value)


def anchors_of(html_file: Path) -> set[str]:
    """The ids (and ``<a name>``) a URL fragment can point to in ``html_file``."""
    parser = _Anchors()
    parser.feed(html_file.read_text(encoding="utf-8"))
    return parser.anchors


def broken_internal_references(site: Path, site_url: str, urls: list[str]) -> list[str]:
    """The URLs on the site that point at a missing file or a missing anchor."""
    broken = []
    for url in sorted(set(urls)):
        if not url.startswith(site_url):
            continue
        parts = urlsplit(url)
        target = site / unquote(parts.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{url}: no such file")
        elif (
            parts.fragment
            and target.suffix == ".html"
            and unquote(parts.fragment) not in anchors_of(target)
        ):
            broken.append(f"{url}: no anchor #{parts.fragment}")
    return broken
