"""Start and stop a real Covalent server that touches nothing outside one folder.

One way to get a server: an isolated home folder (``HOME``, ``COVALENT_CONFIG_DIR``,
``TMPDIR`` and the XDG folders inside it), a free port on 127.0.0.1,
``covalent start`` and, whatever happens, a stop that does what ``covalent stop`` does.

Covalent reads its configuration once, when it is first imported, so a process
that talks to the server calls :func:`isolate_this_process` before ``import covalent``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 60
CLIENT_TIMEOUT_SECONDS = 300
_XDG_VARIABLES = ("XDG_CONFIG_HOME", "XDG_CONFIG_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_environment(home: Path, port: int, *, cluster: bool = False) -> dict:
    """Return this process's environment pointed at ``home`` and ``port``.

    Temporary files (``TMPDIR``) go to ``home/tmp``, so the server's dispatcher
    cache and its Dask cluster's scratch space leave nothing in the system temp
    folder. Without a Dask cluster, ``COVALENT_DISABLE_DASK=1`` makes ``local`` the default
    executor for clients too (otherwise workflows default to ``dask`` and fail).
    """
    env = dict(os.environ)
    env.pop("COVALENT_DISABLE_DASK", None)
    for name in _XDG_VARIABLES:
        env.pop(name, None)
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        TMPDIR=str(home / "tmp"),
        COVALENT_CONFIG_DIR=str(home / ".config" / "covalent"),
        COVALENT_SVC_PORT=str(port),
        COVALENT_DISPATCHER_ADDR="127.0.0.1",
    )
    if not cluster:
        env["COVALENT_DISABLE_DASK"] = "1"
    return env


def isolate_this_process(home: Path, port: int, *, cluster: bool = False) -> None:
    """Point this process's Covalent client at ``home`` and ``port``, and its
    temporary files at ``home/tmp``; call it first."""
    if "covalent" in sys.modules:
        raise RuntimeError(
            "covalent is already imported, so it has read another configuration: "
            "call isolate_this_process() before anything imports covalent."
        )
    home.mkdir(parents=True, exist_ok=True)
    environment = isolated_environment(home, port, cluster=cluster)
    os.environ.clear()
    os.environ.update(environment)
    tempfile.tempdir = None  # temporary files from now on go to the new TMPDIR


def isolate_in_temporary_home(prefix: str) -> tuple[Path, int]:
    """Isolate this process in a new temporary home (removed at exit) and a free port."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    home, port = root / "home", free_port()
    isolate_this_process(home, port)
    return home, port


@dataclass(frozen=True)
class CovalentServer:
    """A running server: its home folder, port and the environment that reaches it."""

    home: Path
    port: int
    env: dict

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def covalent_command(python: str = sys.executable) -> str:
    """Return the ``covalent`` command installed beside ``python``."""
    return str(Path(python).parent / "covalent")


def run_client(
    server: CovalentServer, code: str, python: str = sys.executable
) -> subprocess.CompletedProcess:
    """Run ``python -c code`` as a client of ``server``, in its environment (so with
    its ``PYTHONPATH``), in the current folder."""
    return subprocess.run(
        [python, "-c", code],
        env=server.env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=CLIENT_TIMEOUT_SECONDS,
    )


def _wait_until_listening(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError as error:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Covalent server at {url} did not answer: {error}") from error
            time.sleep(0.25)


def _pid_file(env: dict) -> Path:
    """The file in which ``covalent start`` keeps the server's process id: ``ui.pid``
    in the ``[dispatcher] cache_dir`` of the configuration it wrote."""
    import toml

    config = toml.loads((Path(env["COVALENT_CONFIG_DIR"]) / "covalent.conf").read_text())
    return Path(config["dispatcher"]["cache_dir"]) / "ui.pid"


def _server_processes(env: dict) -> tuple[Path, object, list, list] | None:
    """The pid file of the server ``covalent start`` started with ``env``, the
    launcher, the server processes and their descendants; None if none runs."""
    import psutil

    try:
        pid_file = _pid_file(env)
        launcher = psutil.Process(int(pid_file.read_text()))
        # covalent start runs the server through a shell: `sh -c "python app.py >> log"`.
        servers = launcher.children() or [launcher]
        descendants = [child for server in servers for child in server.children(recursive=True)]
    except (OSError, KeyError, ValueError, psutil.NoSuchProcess):
        return None  # covalent start failed before it started a server, or it has ended
    return pid_file, launcher, servers, descendants


def stop_server(env: dict) -> None:
    """Stop the server ``covalent start`` started with ``env`` the way ``covalent stop``
    does: SIGINT to the server, its child processes (task pools, a Dask cluster)
    killed, the pid file removed. It takes about a second; the command itself spends
    several importing Covalent. Does nothing if no server was started."""
    if (found := _server_processes(env)) is None:
        return
    pid_file, launcher, servers, descendants = found
    for server in servers:
        _signal(server, signal.SIGINT)
    for child in descendants:
        _signal(child, signal.SIGKILL)
    for process in _running(servers, STOP_TIMEOUT_SECONDS) + _running([launcher], 1):
        _signal(process, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def kill_server(env: dict) -> None:
    """Kill the server ``covalent start`` started with ``env`` and its child
    processes at once (SIGKILL), as a power loss or the OOM killer would: it stops
    nothing it started elsewhere. Returns once they have ended; does nothing if no
    server runs."""
    if (found := _server_processes(env)) is None:
        return
    pid_file, launcher, servers, descendants = found
    processes = [*servers, launcher, *descendants]
    for process in processes:
        _signal(process, signal.SIGKILL)
    _running(processes, STOP_TIMEOUT_SECONDS)
    pid_file.unlink(missing_ok=True)


def _signal(process, signal_number: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.kill(process.pid, signal_number)


def _running(processes: list, timeout: float) -> list:
    """Those of ``processes`` still running after up to ``timeout`` seconds. A process
    that has ended counts as ended while it waits to be reaped (a zombie): processes
    started by a command that has exited are reaped by init, sometimes seconds later."""
    import psutil

    def running(process) -> bool:
        try:
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    while (alive := [p for p in processes if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@contextmanager
def running_server(
    home: Path,
    port: int | None = None,
    *,
    cluster: bool = False,
    python: str = sys.executable,
    extra_env: dict[str, str] | None = None,
) -> Iterator[CovalentServer]:
    """Start ``covalent start`` isolated in ``home``; stop it on exit, also after an error
    (:func:`~covalent_plugin_testing.server.stop_server`).

    ``cluster=False`` passes ``--no-cluster``: no Dask cluster and no dashboard on
    port 8787. ``python`` chooses the environment whose Covalent runs the server.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = isolated_environment(home, port, cluster=cluster) | (extra_env or {})
    server = CovalentServer(home=home, port=port, env=env)
    try:
        _start(server, python, home / "covalent-start.log")
        yield server
    finally:
        stop_server(env)


def _start(server: CovalentServer, python: str, log: Path) -> None:
    """``covalent start`` with the server's environment (``--no-cluster`` when it
    disables Dask), then wait until it answers."""
    command = [covalent_command(python), "start", "--port", str(server.port)]
    if server.env.get("COVALENT_DISABLE_DASK") == "1":
        command.append("--no-cluster")
    with log.open("w") as output:
        started = subprocess.run(
            command,
            env=server.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=START_TIMEOUT_SECONDS,
        )
    if started.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{log.read_text()}")
    _wait_until_listening(server.url, START_TIMEOUT_SECONDS)


def restart_server(server: CovalentServer, python: str = sys.executable) -> None:
    """Stop what is left of ``server`` (a server a task has ended or broken) and
    start it again on the same port and home; whoever stops ``server`` stops the
    new one too (the pid file is the same)."""
    stop_server(server.env)
    with suppress(OSError, KeyError, ValueError):
        _pid_file(server.env).unlink(missing_ok=True)
    _start(server, python, server.home / "covalent-restart.log")
