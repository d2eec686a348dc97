"""The task functions of the conformance cases.

They import what they use inside their bodies and rely on nothing but the standard
library, and this module is pickled by value (registered with cloudpickle when the
package is imported): a server, worker or remote machine that has Covalent but not
this package runs them.
"""

from __future__ import annotations


def add(x, y):
    return x + y


def multiply(x, y):
    return x * y


def echo_arguments(*args, **kwargs):
    """Return what the task was called with."""
    return list(args), dict(sorted(kwargs.items()))


class Blob(bytes):
    """Bytes with a short ``str()``, as a NumPy array has: Covalent keeps ``str()``
    of every argument and result, and that of 50 MB of plain bytes is 200 MB long
    (40 s of the server's CPU on 2 cores)."""

    def __str__(self) -> str:
        return f"<{len(self)} bytes>"

    __repr__ = __str__


def blob(megabytes: int) -> Blob:
    """``megabytes`` MiB of bytes, all 256 values."""
    return Blob(bytes(range(256)) * (4096 * megabytes))


def big_result(argument: bytes, megabytes: int):
    """Return the size and digest of ``argument``, and ``megabytes`` MiB of bytes."""
    import hashlib

    return len(argument), hashlib.sha256(argument).hexdigest(), blob(megabytes)


def raises(token: str):
    raise ValueError(f"bad value 7 ({token})")


def prints_from_python(token: str):
    import sys

    print(f"{token} python stdout")
    print(f"{token} python stderr", file=sys.stderr)
    return "printed"


def prints_from_a_subprocess(token: str):
    import subprocess

    subprocess.run(["sh", "-c", f"echo '{token} subprocess stdout'"], check=True)
    subprocess.run(["sh", "-c", f"echo '{token} subprocess stderr' >&2"], check=True)
    return "printed"


def prints_from_c(token: str):
    import ctypes
    import os

    os.write(1, f"{token} fd 1\n".encode())
    os.write(2, f"{token} fd 2\n".encode())
    libc = ctypes.CDLL(None)
    libc.puts(f"{token} C puts".encode())
    libc.fflush(None)  # C's stdout is buffered; a C library would flush at exit
    return "printed"


def prints_bytes_that_are_not_utf8(token: str):
    import sys

    sys.stdout.buffer.write(token.encode() + b" not UTF-8: \xff\xfe\n")
    sys.stderr.buffer.write(token.encode() + b" not UTF-8: \xc3\n")
    sys.stdout.flush()
    sys.stderr.flush()
    return "printed"


def calls_sys_exit():
    import sys

    sys.exit(3)


def calls_os_exit():
    import os

    os._exit(4)


def segfaults():
    import ctypes

    ctypes.string_at(0)


def returns_something_unpicklable():
    import threading

    return threading.Lock()


def heartbeat(folder: str, limit: float):
    """Write this process's id to ``folder/pid``, then touch ``folder/beat`` every
    50 ms until ``folder/release`` exists or ``limit`` seconds have passed."""
    import os
    import time
    from pathlib import Path

    Path(folder, "pid").write_text(str(os.getpid()))
    beat, release = Path(folder, "beat"), Path(folder, "release")
    deadline = time.monotonic() + limit
    count = 0
    while not release.exists() and time.monotonic() < deadline:
        count += 1
        beat.write_text(str(count))
        time.sleep(0.05)
    return count


def after(_previous, marker: str):
    """Create ``marker``: the proof that this task ran."""
    from pathlib import Path

    Path(marker).touch()
    return "ran"


def square(x):
    return x * x


def counts_its_run(path: str):
    """Append a line to ``path``: one line per run."""
    import os

    with open(path, "a") as runs:
        runs.write(f"run in process {os.getpid()}\n")
    return "counted"


def starts_a_child_in_a_new_session(pid_file: str):
    """Start ``sleep 300`` in a session of its own, write its id to ``pid_file``,
    return without waiting for it."""
    import subprocess
    from pathlib import Path

    child = subprocess.Popen(
        ["sleep", "300"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    Path(pid_file).write_text(str(child.pid))
    return child.pid
