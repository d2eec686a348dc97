"""SSH connections shared by every task of the server: the connection code of the
SSH and Slurm executors.

One connection per host and credentials (and event loop) is opened, with the
host key checked against a ``known_hosts`` file, and reused by every task until it
drops; the next task then opens a new one. Each way logging in can fail raises
``LoginFailed`` (a ``ConnectionError``) that names ``host:port`` and the fix.
"""

import asyncio
import getpass
import os
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

import asyncssh

#: Seconds between keepalive messages, and how many may go unanswered, so that
#: a connection that silently died is noticed within about 15 s.
KEEPALIVE_SECONDS, KEEPALIVE_COUNT = 5, 3


@dataclass(frozen=True)
class SSHTarget:
    """Where to connect, and as whom."""

    hostname: str
    port: int = 22
    #: Who to log in as (empty means the user the server runs as).
    username: str = ""
    #: A private key file (empty means the default keys, ``~/.ssh/id_*``, and
    #: the agent).
    ssh_key_file: str = ""
    known_hosts: str = "~/.ssh/known_hosts"  #: The host keys to trust.
    connect_timeout: float = 10.0  #: Seconds to wait for the login.

    @property
    def where(self) -> str:
        return f"{self.hostname}:{self.port}"

    @property
    def user(self) -> str:
        return self.username or getpass.getuser()

    def check(self) -> "SSHTarget":
        """Return this target if its values can work here; else raise a
        ``ValueError`` that names the value and the fix."""
        if not self.hostname:
            raise ValueError("hostname '' is empty: name the machine to use.")
        check_port(self.port)
        known_hosts = Path(self.known_hosts).expanduser()
        if not known_hosts.is_file():
            raise ValueError(
                f"known_hosts {self.known_hosts!r} is not a file: host keys are "
                f"always checked. Add {self.where}'s key to it, after checking its "
                f"fingerprint: ssh-keyscan -p {self.port} {self.hostname} >> "
                f"{self.known_hosts}"
            )
        if self.ssh_key_file and not Path(self.ssh_key_file).expanduser().is_file():
            raise ValueError(
                f"ssh_key_file {self.ssh_key_file!r} is not a file: name the "
                "private key whose public key is in the host's authorized_keys."
            )
        return self


#: An executor's arguments that say where to log in (an ``SSHTarget``'s fields).
LOGIN_ARGUMENTS = (
    "hostname",
    "port",
    "username",
    "ssh_key_file",
    "known_hosts",
    "connect_timeout",
)


def target_of(executor: object) -> SSHTarget:
    """The ``SSHTarget`` an executor's :data:`LOGIN_ARGUMENTS` name."""
    return SSHTarget(*(getattr(executor, name) for name in LOGIN_ARGUMENTS))


def check_port(port: object) -> int:
    """Return ``port`` if it is a TCP port; else raise a ``ValueError``."""
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port {port!r} is not a TCP port (1-65535).")
    return port


def environment(env: dict) -> tuple[tuple[str, str], ...]:
    """``env`` as sorted ``(name, value)`` pairs, after checking every name."""
    for name in env:
        if not str(name).isidentifier():
            raise ValueError(f"env name {name!r} is not a variable name.")
    return tuple(sorted((name, str(value)) for name, value in env.items()))


class LoginFailed(ConnectionError):
    """Logging in failed; the message says why and what to do."""


#: Open connections, by target and event loop.
_connections: dict[tuple[SSHTarget, int], asyncssh.SSHClientConnection] = {}
_opening: dict[tuple[SSHTarget, int], asyncio.Lock] = {}


async def connection(target: SSHTarget) -> asyncssh.SSHClientConnection:
    """The open connection to ``target`` for this event loop, opened if needed."""
    key = (target, id(asyncio.get_running_loop()))
    async with _opening.setdefault(key, asyncio.Lock()):
        open_now = _connections.get(key)
        if open_now is None or open_now.is_closed():
            _connections[key] = await connect(target)
        return _connections[key]


async def connect(target: SSHTarget) -> asyncssh.SSHClientConnection:
    """Log in to ``target``; raise a ``ConnectionError`` that says what failed."""
    key_file = target.ssh_key_file
    keys = [str(Path(key_file).expanduser())] if key_file else ()
    try:
        return await asyncio.wait_for(
            asyncssh.connect(
                target.hostname,
                target.port,
                username=target.user,
                client_keys=keys,
                known_hosts=str(Path(target.known_hosts).expanduser()),
                keepalive_interval=KEEPALIVE_SECONDS,
                keepalive_count_max=KEEPALIVE_COUNT,
            ),
            target.connect_timeout,
        )
    except Exception as error:
        raise LoginFailed(connect_failure(target, error)) from None


def connect_failure(target: SSHTarget, error: Exception) -> str:
    """Say why logging in to ``target`` failed, and what to do."""
    where, host = target.where, target.hostname
    if isinstance(error, asyncssh.HostKeyNotVerifiable):
        return (
            f"{where}: the host key it showed is not the one {target.known_hosts} "
            f"holds for it ({error.reason}). Host keys are always checked. If the "
            "host is new, add its key after checking its fingerprint (ssh-keyscan "
            f"-p {target.port} {host} >> {target.known_hosts}); if its key "
            "changed, find out why before you replace it."
        )
    if isinstance(error, asyncssh.PermissionDenied):
        key = target.ssh_key_file or "the default keys (~/.ssh/id_*) and agent"
        return (
            f"{where}: login as {target.user!r} with {key} was refused. Add the "
            f"public key to ~{target.user}/.ssh/authorized_keys on {host}, or set "
            "username and ssh_key_file."
        )
    if isinstance(error, asyncssh.KeyImportError):
        return (
            f"{where}: ssh_key_file {target.ssh_key_file!r} cannot be read "
            f"({error}). Name the private key, not its .pub file. A key with a "
            "passphrase cannot be read here: make one without (ssh-keygen -N ''), "
            "or load it into ssh-agent and leave ssh_key_file empty."
        )
    if isinstance(error, ConnectionRefusedError):
        return (
            f"{where} refused the connection: no SSH server listens on port "
            f"{target.port} of {host}. Check hostname and port."
        )
    if isinstance(error, socket.gaierror):
        return f"{where}: no such host ({error.strerror}). Check hostname."
    if isinstance(error, TimeoutError):
        return (
            f"{where} did not let us log in within {target.connect_timeout:g} s. "
            f"Check that {host} is up and no firewall drops port {target.port}."
        )
    return f"{where}: {type(error).__name__}: {error}"


def discard(target: SSHTarget) -> None:
    """Forget this event loop's connection to ``target`` (it failed)."""
    key = (target, id(asyncio.get_running_loop()))
    lost = _connections.pop(key, None)
    if lost is not None:
        lost.close()


def covalent_folders(folder: str) -> str:
    """Shell assignments that put every folder Covalent makes when it is imported
    (its configuration, logs, plugin folder, database and dispatch cache) in
    ``folder``, a shell word such as ``"$config"``: a task's Covalent then writes
    nothing in the remote user's home, and it all goes when ``folder`` goes."""
    folders = {
        "COVALENT_CONFIG_DIR": "",
        "COVALENT_LOGDIR": "",
        "COVALENT_EXECUTOR_DIR": "/plugins",
        "COVALENT_DATABASE": "/dispatcher.sqlite",
        "COVALENT_DISPATCH_CACHE_DIR": "/dispatches",
    }
    return " ".join(f"{name}={folder}{rest}" for name, rest in folders.items())


def remote_quote(value: str | os.PathLike) -> str:
    """``value`` as one word for the remote shell, a leading ``~/`` left for it to
    expand to the remote user's home."""
    text = str(value)
    if text.startswith("~/"):
        return '"$HOME"/' + shlex.quote(text[2:])
    return shlex.quote(text)
