"""Processes forked from the test's process while it does something else, as
Covalent's ``local`` forks its pool workers inside the server."""

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def forking_meanwhile(every: float = 0.005, lifetime: float = 60) -> Iterator[None]:
    """Fork a child every ``every`` seconds until the block ends; each keeps a copy
    of what this process had open at that moment for ``lifetime`` seconds, or
    until the block ends, when all are killed and reaped."""
    forked, stop = [], threading.Event()

    def fork_until_stopped() -> None:
        while not stop.is_set():
            pid = os.fork()
            if pid == 0:
                time.sleep(lifetime)
                os._exit(0)
            forked.append(pid)
            time.sleep(every)

    forker = threading.Thread(target=fork_until_stopped)
    forker.start()
    try:
        yield
    finally:
        stop.set()
        forker.join()
        for pid in forked:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
