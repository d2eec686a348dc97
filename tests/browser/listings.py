"""The parts of the plugin sources that the how-to page includes, by marker name."""

import re
from pathlib import Path

_MARKED_PART = re.compile(
    r"^# --8<-- \[start:(?P<name>[\w-]+)\]\n(?P<text>.*?)^# --8<-- \[end:(?P=name)\]\n",
    re.MULTILINE | re.DOTALL,
)


def marked_parts(source: Path) -> dict[str, str]:
    """Map each ``# --8<-- [start:NAME]`` ... ``[end:NAME]`` part of ``source`` to its text."""
    return {
        match["name"]: match["text"]
        for match in _MARKED_PART.finditer(source.read_text(encoding="utf-8"))
    }
