"""How a launcher (or one supervised task) starts in a new Python: the plain-source
boot program, the versions it checks, and the first message it reads."""

# --8<-- [start:boot]
import sys
from collections.abc import Callable
from typing import Any

import cloudpickle

#: The exit status of :data:`LAUNCHER_BOOT` when versions differ, and what it says
#: on stderr before it exits, followed by the versions it found.
VERSIONS_DIFFER, VERSIONS_SAID = 97, "timing-executor versions: "


#: Starts a launcher (or, given a file, one supervised task) in a new Python. It
#: first checks that this Python, Covalent and cloudpickle are the versions the
#: executor expects (``argv[1]``), then unpickles what to run: from the first
#: message on file descriptor 0, or from the file ``argv[2]``. Plain source, so a
#: Python of another version still runs it and says what differs.
LAUNCHER_BOOT = """
import json, os, sys
expected = json.loads(sys.argv[1])
found = {"python": "%d.%d" % sys.version_info[:2]}
if found["python"] == expected["python"]:
    from importlib import metadata
    for name in expected:
        if name != "python":
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = "not installed"
if found != expected:
    sys.stderr.write("{said}" + json.dumps(found) + "\\n")
    sys.exit({status})
import pickle
if sys.argv[2:]:
    with open(sys.argv[2], "rb") as job:
        job = pickle.load(job)
else:
    def read(size):
        data = b""
        while len(data) < size:
            more = os.read(0, size - len(data))
            if not more:
                sys.exit(0)
            data += more
        return data
    job = pickle.loads(read(int.from_bytes(read(8), "big")))
job()
""".replace("{said}", VERSIONS_SAID).replace("{status}", str(VERSIONS_DIFFER))


def runtime_versions() -> dict[str, str]:
    """What the far side of a task must run: this Python's minor version, and
    this Covalent's and cloudpickle's versions (pickles of code need them)."""
    from importlib import metadata

    return {
        "python": "{}.{}".format(*sys.version_info[:2]),
        "covalent": metadata.version("covalent"),
        "cloudpickle": metadata.version("cloudpickle"),
    }


def boot_message(job: Callable[[], Any]) -> bytes:
    """The first message to a launcher: ``job`` (what it runs), pickled by value."""
    data = cloudpickle.dumps(job)
    return len(data).to_bytes(8, "big") + data


# --8<-- [end:boot]
