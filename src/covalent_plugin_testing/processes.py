"""Start, find and stop the processes the kit starts, and choose their ports."""

from __future__ import annotations

import random
import socket
import subprocess
from contextlib import suppress

#: The daemons' ports come from here, below the kernel's ephemeral range (32768-60999
#: on Linux) in which any outgoing connection may take the port a daemon wants.
PORT_RANGE = (20000, 32000)


def free_ports(count: int) -> list[int]:
    """``count`` different ports of :data:`PORT_RANGE` free on 127.0.0.1 now."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(*PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` listens on TCP ``port``."""
    import psutil

    with suppress(psutil.Error):
        for connection in psutil.Process(pid).net_connections("tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
                return True
    return False


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM ``process``, and SIGKILL it if it still runs ``grace`` seconds later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
