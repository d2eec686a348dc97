"""Build the site and run every example in it (``tox -e docs``).

    python conf/build_docs.py

Sphinx reads the pages once, from scratch (``-E``), for two builds with every warning
an error (``-n -W --keep-going``): ``-b doctest`` reads them into ``build/doctrees`` and
runs every example (see ``parallel_doctest.py``), and once it has saved what it read,
``-b html -a`` writes every page into ``build/html`` from that, beside the examples
running. Reading costs about 6 s of CPU time, mostly autodoc, and the examples are
short of CPU time. The HTML build's output is printed after the doctest build's.
Fails if either fails.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCTREES = ROOT / "build" / "doctrees"
#: The doctest build creates this file when it has saved the pages it read.
PAGES_READ = DOCTREES / "pages-read"


def sphinx_build(builder: str, *options: str) -> list[str]:
    common = ["-n", "-W", "--keep-going", "-c", "conf", "-d", str(DOCTREES), "-b", builder]
    return [sys.executable, "-m", "sphinx", *options, *common, "docs", f"build/{builder}"]


def main() -> int:
    PAGES_READ.unlink(missing_ok=True)
    doctest = subprocess.Popen(
        sphinx_build("doctest", "-E"),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        env=os.environ | {"PARALLEL_DOCTEST_PAGES_READ": str(PAGES_READ)},
    )
    while not PAGES_READ.exists() and doctest.poll() is None:
        time.sleep(0.1)
    html = None
    if PAGES_READ.exists():
        html = subprocess.Popen(
            sphinx_build("html", "-a"),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    doctest.wait()
    if html is None:
        print("sphinx-build -b html: not run (the doctest build ended before reading the pages)")
        return doctest.returncode or 1
    html_output, _ = html.communicate()
    print(html_output, end="")
    for name, code in (("html", html.returncode), ("doctest", doctest.returncode)):
        print(f"sphinx-build -b {name}: {'OK' if code == 0 else f'FAILED (exit {code})'}")
    return html.returncode or doctest.returncode


if __name__ == "__main__":
    sys.exit(main())
