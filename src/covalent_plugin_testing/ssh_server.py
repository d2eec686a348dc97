"""Start and stop a real OpenSSH server (``sshd``) on 127.0.0.1, for tests of SSH executors.

The server runs as the current user, without root privileges, from one folder: its host
key, a client key pair, ``authorized_keys``, ``known_hosts``, ``sshd_config`` and log.
Only the user running it can log in, and only with the client key. As root it works
too; if sshd's privilege separation folder is missing (``/run/sshd`` on Debian, which
only a running ``ssh`` service creates), it is created, and left for other servers.

Remote commands do not get the test's environment. They run through the user's login
shell (``$SHELL -c command``, which may read the user's ``~/.bashrc``), in the user's
real home folder (from ``/etc/passwd``, as ``HOME``), with sshd's minimal ``PATH`` (on
Debian ``/usr/local/bin:/usr/bin:/bin:/usr/games``; for root also the ``sbin`` folders)
unless the shell's startup files change it. So tests start interpreters by absolute
path (:attr:`SSHServer.python`). ``HOME`` and ``TMPDIR`` are set to folders inside the
server's folder (:attr:`SSHServer.home`), so what remote commands write there (such as
Covalent's configuration) stays out of the real home; their working folder stays the
real home, so give remote programs absolute paths.

On exit sshd is stopped, and every process of its sessions, also those that left their
session's process tree (they are recognised by their ``SSH_CONNECTION`` variable).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from covalent_plugin_testing.processes import stop_process
from covalent_plugin_testing.server import free_port

START_TIMEOUT_SECONDS = 30
STOP_GRACE_SECONDS = 5
HOST = "127.0.0.1"
_POLL_SECONDS = 0.05
_START_ATTEMPTS = 5

#: The settings of every server. ``extra_config`` lines come before them, so they win:
#: for most keywords sshd keeps the first value it reads.
BASE_CONFIG = [
    f"ListenAddress {HOST}",
    "AddressFamily inet",
    "PermitRootLogin prohibit-password",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "StrictModes no",
    "PrintMotd no",
    "Subsystem sftp internal-sftp",
]

#: Where OpenSSH's programs are looked for after the PATH.
_PROGRAM_FOLDERS = ("/usr/sbin", "/usr/bin")
_INSTALL_HINT = "install OpenSSH's {part}: sudo apt install {package} (Debian/Ubuntu)"


@dataclass(frozen=True)
class SSHServer:
    """A running sshd: where it listens, who may log in and with which files."""

    host: str
    port: int
    username: str
    #: The client's private key (its public key is in ``authorized_keys``).
    key_file: str
    #: A known_hosts file with the server's host key, for ``[127.0.0.1]:port``.
    known_hosts: str
    #: The Python remote commands should run, by absolute path (the PATH is minimal).
    python: str
    folder: Path
    #: The process id of the listening sshd.
    pid: int
    #: sshd's log (its ``-E`` file, with its standard output and error).
    log: Path
    #: ``HOME`` of remote commands (``TMPDIR`` is its ``tmp``), inside ``folder``.
    home: Path

    def asyncssh_options(self) -> dict:
        """Keyword arguments for ``asyncssh.connect()``: this server, the client key,
        the known_hosts file, and no ssh-agent or ``~/.ssh/config``."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "client_keys": [self.key_file],
            "known_hosts": self.known_hosts,
            "agent_path": None,
            "config": [],
        }

    def ssh_command(self, *command: str) -> list[str]:
        """The OpenSSH client command that runs ``command`` on this server (with this
        server's files only: no ``~/.ssh/config``, agent or other keys)."""
        return [_program("ssh", "client", "openssh-client"), *self.ssh_options(), *command]

    def ssh_options(self) -> list[str]:
        """The OpenSSH client options (``ssh``, ``scp``, ``sftp``) to reach this server,
        ending with the destination."""
        options = {
            "Port": self.port,
            "User": self.username,
            "IdentityFile": self.key_file,
            "IdentitiesOnly": "yes",
            "IdentityAgent": "none",
            "BatchMode": "yes",
            "UserKnownHostsFile": self.known_hosts,
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "UpdateHostKeys": "no",
            "ConnectTimeout": 10,
            "LogLevel": "ERROR",
        }
        return [
            "-F",
            "/dev/null",
            *[f"-o{key}={value}" for key, value in options.items()],
            self.host,
        ]

    def session_pids(self) -> list[int]:
        """The sshd processes that serve the current connections, one per connection
        (the children of the listening sshd), oldest first."""
        import psutil

        with suppress(psutil.NoSuchProcess):
            children = psutil.Process(self.pid).children()
            return [child.pid for child in sorted(children, key=_start_time)]
        return []

    def client_pids(self) -> list[int]:
        """The processes at the client end of this server's connections (those that
        hold a TCP connection to its port), this one left out. A process forked from
        a client holds its connections too (such as the pool workers of Covalent's
        ``local`` executor, forked from the Covalent server), so it is listed too."""
        import psutil

        found = []
        for process in psutil.process_iter():
            with suppress(psutil.Error):
                connections = process.net_connections("tcp")
                if any(c.raddr == (self.host, self.port) for c in connections):
                    found.append(process.pid)
        return [pid for pid in found if pid != os.getpid()]

    def clients_stopped(self) -> AbstractContextManager[list[int]]:
        """Stop the processes of :meth:`client_pids` (SIGSTOP) until the block ends
        (SIGCONT); the block gets their ids. Their connections stay open and say
        nothing, as over a path that died silently (a machine that lost power, a NAT
        that dropped the flow): sshd and the commands of its sessions notice nothing,
        unless they check that the client answers."""
        return _stopped(self.client_pids())

    def sessions_stopped(self) -> AbstractContextManager[list[int]]:
        """Stop the sshd processes that serve the current connections (SIGSTOP), not
        their commands, until the block ends (SIGCONT); the block gets their ids. To
        the clients the connections stay open and say nothing, as when the path to
        the server died silently; the commands run on and get nothing on stdin."""
        return _stopped([p.pid for pid in self.session_pids() for p in _sshd_processes(pid)])

    def kill_session(self, pid: int) -> None:
        """Drop the connection that sshd process ``pid`` serves (one of
        :meth:`session_pids`) as a network failure would: SIGKILL to it and its sshd
        children, not to its commands. Its client sees the connection end without an
        exit status; its commands get end-of-file on stdin and ``EPIPE`` (or SIGPIPE)
        when they write to stdout or stderr, not SIGHUP, and run on otherwise.

        (As another user than root, each connection has two sshd processes: a
        privileged monitor and its child that serves the connection, which survives
        a SIGKILL to the monitor alone.)"""
        _signal_all(_sshd_processes(pid), signal.SIGKILL)


def _sshd_processes(session_pid: int) -> list:
    """The sshd processes of the session that sshd process ``session_pid`` serves:
    it and its sshd descendants, not the commands."""
    import psutil

    try:
        session = psutil.Process(session_pid)
        processes = [session, *session.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    return [p for p in processes if _is_sshd(p)]


@contextmanager
def _stopped(pids: list[int]) -> Iterator[list[int]]:
    """Stop the processes ``pids`` (SIGSTOP) until the block ends (SIGCONT). The
    block starts once each has stopped (a signal takes effect when its process is
    next scheduled) or ended."""
    import psutil

    def running(pid: int) -> bool:
        with suppress(psutil.Error):
            return psutil.Process(pid).status() not in (
                psutil.STATUS_STOPPED,
                psutil.STATUS_ZOMBIE,
            )
        return False

    try:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (late := [pid for pid in pids if running(pid)]) and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
        if late:
            raise RuntimeError(f"processes {late} did not stop in {START_TIMEOUT_SECONDS} s")
        yield pids
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _start_time(process) -> float:
    import psutil

    with suppress(psutil.Error):
        return process.create_time()
    return 0.0


def _is_sshd(process) -> bool:
    import psutil

    with suppress(psutil.Error):
        return process.name() == "sshd"
    return False


def _program(name: str, part: str, package: str) -> str:
    """The absolute path of OpenSSH's ``name``: on the PATH, else where Debian puts it
    (``/usr/sbin`` is not on ordinary users' PATH)."""
    candidates = [shutil.which(name), *(f"{folder}/{name}" for folder in _PROGRAM_FOLDERS)]
    for candidate in filter(None, candidates):
        if os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    places = ", ".join(["the PATH", *_PROGRAM_FOLDERS])
    hint = _INSTALL_HINT.format(part=part, package=package)
    raise RuntimeError(f"{name} not found (looked in {places}): {hint}")


def _new_key(path: Path) -> None:
    """Make an ed25519 key pair without passphrase: ``path`` (mode 600) and ``path.pub``."""
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    keygen = _program("ssh-keygen", "client", "openssh-client")
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "covalent-plugin-testing", "-f", path],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )


def _config_lines(extra_config: dict | list | None) -> tuple[list[str], list[str]]:
    """``extra_config`` as sshd_config lines: those to put before the base settings
    and, from the first ``Match`` line on, those to put after them."""
    if isinstance(extra_config, dict):
        lines = [f"{key} {value}" for key, value in extra_config.items()]
    else:
        lines = [str(line) for line in extra_config or []]
    for index, line in enumerate(lines):
        if line.strip().lower().startswith("match "):
            return lines[:index], lines[index:]
    return lines, []


def _write_config(folder: Path, port: int, extra_config: dict | list | None) -> Path:
    before, after = _config_lines(extra_config)
    home = folder / "home"
    files = [
        f"Port {port}",
        f"HostKey {folder / 'host_ed25519'}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        f"SetEnv HOME={home} TMPDIR={home / 'tmp'}",
    ]
    config = folder / "sshd_config"
    config.write_text("\n".join([*before, *files, *BASE_CONFIG, *after]) + "\n")
    return config


def _wait_until_listening(process: subprocess.Popen, log: Path, port: int) -> bool:
    """Wait until sshd says it listens on ``port`` (True) or has exited (False)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while f"listening on {HOST} port {port}" not in _read(log):
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise TimeoutError(f"sshd did not start in {START_TIMEOUT_SECONDS} s:\n{_read(log)}")
        time.sleep(_POLL_SECONDS)
    return True


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def _make_privsep_folder(log_text: str) -> bool:
    """As root, create the privilege separation folder sshd says is missing (as
    Debian's ``ssh`` service does); return whether it did."""
    marker = "Missing privilege separation directory: "
    if os.geteuid() != 0 or marker not in log_text:
        return False
    folder = log_text.split(marker, 1)[1].split()[0]
    os.makedirs(folder, mode=0o755, exist_ok=True)
    return True


def _start(
    sshd: str, folder: Path, extra_config: dict | list | None
) -> tuple[subprocess.Popen, int]:
    """Start sshd on a free port; return the process and its port. A port taken
    meanwhile (``free_port()`` only finds a free one) is replaced by another."""
    log = folder / "sshd.log"
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        config = _write_config(folder, port, extra_config)
        log.unlink(missing_ok=True)
        with log.open("a") as output:
            process = subprocess.Popen(
                [sshd, "-D", "-f", str(config), "-E", str(log)],
                cwd=folder,
                stdout=output,
                stderr=output,
                stdin=subprocess.DEVNULL,
            )
        try:
            if _wait_until_listening(process, log, port):
                return process, port
        except BaseException:
            _stop(process, port)
            raise
        process.wait()
        text = _read(log)
        if "Address already in use" not in text and not _make_privsep_folder(text):
            break
    raise RuntimeError(f"sshd did not start (exit status {process.returncode}):\n{_read(log)}")


def _check_login(server: SSHServer, process: subprocess.Popen) -> None:
    """Log in once with the OpenSSH client, or raise an error with sshd's log."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while process.poll() is None:
        result = subprocess.run(
            server.ssh_command("true"),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=START_TIMEOUT_SECONDS,
        )
        if result.returncode == 0:
            return
        if time.monotonic() > deadline or "Permission denied" in result.stderr:
            raise RuntimeError(
                f"Cannot log in to sshd on port {server.port} as {server.username}: "
                f"{result.stderr.strip()}\nsshd's log:\n{_read(server.log)}"
            )
        time.sleep(_POLL_SECONDS)
    raise RuntimeError(f"sshd has ended (exit status {process.returncode}):\n{_read(server.log)}")


def _session_levels(listener: subprocess.Popen, port: int) -> list[list]:
    """The processes of the sessions of sshd ``listener``, deepest first: first those
    that left their session's process tree (processes of this user whose
    ``SSH_CONNECTION`` ends with ``127.0.0.1 port``), then sshd's descendants by depth:
    its grandchildren's children before its grandchildren, and so on."""
    import psutil

    levels = []
    with suppress(psutil.Error):
        level = psutil.Process(listener.pid).children()
        while level:
            levels.append(level)
            level = [child for process in level for child in _children(process)]
    in_tree = {process.pid for level in levels for process in level}
    strays = []
    for process in psutil.process_iter():
        with suppress(psutil.Error):
            connection = process.environ().get("SSH_CONNECTION", "").split()
            if connection[2:] == [HOST, str(port)] and process.pid not in in_tree:
                strays.append(process)
    return [level for level in [strays, *reversed(levels)] if level]


def _children(process) -> list:
    import psutil

    with suppress(psutil.Error):
        return process.children()
    return []


def _alive(processes: list, timeout: float) -> list:
    """Those of ``processes`` still running after up to ``timeout`` seconds (a zombie
    counts as ended: an orphan's may wait a while for init to reap it)."""
    import psutil

    def running(process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    deadline = time.monotonic() + timeout
    while (alive := [p for p in processes if running(p)]) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
    return alive


def _signal_all(processes: list, signal_number: int) -> None:
    import psutil

    for process in processes:
        with suppress(psutil.Error):
            process.send_signal(signal_number)


def _stop(listener: subprocess.Popen, port: int) -> None:
    """Stop every process of sshd's sessions, then sshd: SIGTERM, then SIGKILL to those
    still running after :data:`STOP_GRACE_SECONDS`. The deepest processes go first, so
    that each is reaped by its parent (not left a zombie for init to reap)."""
    for level in _session_levels(listener, port):
        _signal_all(level, signal.SIGTERM)
        _signal_all(_alive(level, STOP_GRACE_SECONDS), signal.SIGKILL)
    # Connections accepted meanwhile.
    for level in _session_levels(listener, port):
        _signal_all(level, signal.SIGKILL)
    stop_process(listener, STOP_GRACE_SECONDS)
    # Processes that sessions started while they were being stopped.
    for level in _session_levels(listener, port):
        _signal_all(level, signal.SIGKILL)


@contextmanager
def running_ssh_server(
    folder: Path,
    python: str = sys.executable,
    *,
    extra_config: dict | list | None = None,
) -> Iterator[SSHServer]:
    """Run ``sshd`` as the current user on a free port of 127.0.0.1, with its files in
    ``folder``, until the block ends; then stop it and every process of its sessions.

    It yields once a login with the client key runs a command (0.2 to 0.4 s after the
    start). ``extra_config`` adds sshd_config settings (``{"MaxSessions": 2}`` or lines such as
    ``"ClientAliveInterval 1"``), taken before the base ones (:data:`BASE_CONFIG`), so
    they can change them; a ``Match`` line and those after it go last. sshd's defaults
    are a real server's: ``MaxSessions 10`` per connection, and ``MaxStartups 10:30:100``
    (beyond 10 connections being authenticated at once, some are dropped).
    ``python`` is only recorded, as :attr:`SSHServer.python`.
    """
    sshd = _program("sshd", "server", "openssh-server")
    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    _new_key(folder / "host_ed25519")
    _new_key(folder / "client_ed25519")
    (folder / "home" / "tmp").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "client_ed25519.pub", folder / "authorized_keys")
    process, port = _start(sshd, folder, extra_config)
    try:
        key_type, key = (folder / "host_ed25519.pub").read_text().split()[:2]
        known_hosts = folder / "known_hosts"
        known_hosts.write_text(f"[{HOST}]:{port} {key_type} {key}\n")
        server = SSHServer(
            host=HOST,
            port=port,
            username=pwd.getpwuid(os.geteuid()).pw_name,
            key_file=str(folder / "client_ed25519"),
            known_hosts=str(known_hosts),
            python=python,
            folder=folder,
            pid=process.pid,
            log=folder / "sshd.log",
            home=folder / "home",
        )
        _check_login(server, process)
        yield server
    finally:
        _stop(process, port)
