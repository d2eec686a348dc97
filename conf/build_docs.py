"""Build the site and run every example in it, at the same time (``tox -e docs``).

    python conf/build_docs.py

Two ``sphinx-build`` runs from scratch (``-E``) with every warning an error
(``-n -W --keep-going``): ``-b html`` into ``build/html`` and ``-b doctest`` into
``build/doctest``. The HTML build needs no server and takes a few seconds, so it
runs beside the doctest build, which waits for its servers and its examples; its
output is printed after the doctest build's. Fails if either fails.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sphinx_build(builder: str) -> list[str]:
    options = ["-E", "-n", "-W", "--keep-going", "-c", "conf", "-b", builder]
    return [sys.executable, "-m", "sphinx", *options, "docs", f"build/{builder}"]


def main() -> int:
    html = subprocess.Popen(
        sphinx_build("html"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    doctest = subprocess.run(sphinx_build("doctest"), cwd=ROOT, stdin=subprocess.DEVNULL)
    html_output, _ = html.communicate()
    print(html_output, end="")
    for name, code in (("html", html.returncode), ("doctest", doctest.returncode)):
        print(f"sphinx-build -b {name}: {'OK' if code == 0 else f'FAILED (exit {code})'}")
    return html.returncode or doctest.returncode


if __name__ == "__main__":
    sys.exit(main())
