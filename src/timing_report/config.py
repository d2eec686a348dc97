"""Which record file ``timing-executor report`` reads when it is given no PATH: the
``timing_filepath`` that ``covalent.conf`` sets for the ``timing`` executor, else the
executors' default file. Reads the file with ``toml`` (as Covalent does), without
importing Covalent."""

from __future__ import annotations

import os
from pathlib import Path

import toml

#: The executors' default record file
#: (``timing_executor.server_side.records.DEFAULT_TIMING_FILEPATH``).
DEFAULT_TIMING_FILEPATH = str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covalent" / "timing.log"
)


def covalent_config_file() -> Path:
    """``covalent.conf`` where Covalent looks for it: in ``$COVALENT_CONFIG_DIR``, else
    ``$XDG_CONFIG_DIR``, else ``~/.config/covalent``."""
    folder = (
        os.environ.get("COVALENT_CONFIG_DIR")
        or os.environ.get("XDG_CONFIG_DIR")
        or str(Path.home() / ".config" / "covalent")
    )
    return Path(folder) / "covalent.conf"


def default_records_file() -> tuple[str, str]:
    """The record file to read, and where that choice comes from (for a message)."""
    config_file = covalent_config_file()
    try:
        configured = toml.loads(config_file.read_text())["executors"]["timing"]
        path = Path(configured["timing_filepath"]).expanduser()
    except (OSError, KeyError, TypeError, toml.TomlDecodeError):
        return DEFAULT_TIMING_FILEPATH, "the executors' default file"
    if path.is_dir():  # as the executors do: the file timing.log inside it
        path = path / "timing.log"
    return str(path), f"[executors.timing] timing_filepath in {config_file}"
