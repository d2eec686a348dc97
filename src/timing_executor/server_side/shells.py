"""Run shell commands on the server's own machine or over SSH, the same way: what
the Slurm executor needs to submit jobs, ask for their state and move their files,
wherever ``sbatch`` is.

Commands run through ``sh -c`` in the user's home folder, so relative paths start
there on both sides.
"""

import asyncio
import os
import shlex
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import asyncssh

from timing_executor.server_side.launchers import SpawnedProcess
from timing_executor.server_side.ssh_connection import (
    LoginFailed,
    SSHTarget,
    connection,
    discard,
)

#: How many commands run at once over one SSH connection. OpenSSH allows 10
#: sessions per connection (``MaxSessions``), and ``ssh_timing``'s launcher may
#: hold one.
SESSIONS_PER_CONNECTION = 8


@dataclass(frozen=True)
class CommandResult:
    """How a command ended (``status`` None: it was cut off) and what it wrote."""

    status: int | None
    stdout: bytes
    stderr: bytes

    def error(self) -> str:
        """What the command said on stderr, or its exit status."""
        return self.stderr.decode(errors="replace").strip() or f"exit {self.status}"


class Shell(Protocol):
    #: Where the commands run, for messages (``this machine``, or ``host:port``).
    where: str

    async def run(
        self, command: str, input: bytes | None = None
    ) -> CommandResult: ...


class LocalShell:
    """Commands on the server's own machine.

    Each runs in a thread of this pool (:func:`run_local`)."""

    where = "this machine"
    _threads = ThreadPoolExecutor(8, thread_name_prefix="local-shell")

    async def run(self, command: str, input: bytes | None = None) -> CommandResult:
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, run_local, command, input
        )


def run_local(command: str, input: bytes | None = None) -> CommandResult:
    """Run ``command`` with ``sh -c`` in the home folder; wait for it to exit.

    Its input and output are in-memory files, not pipes, and ``posix_spawn``
    starts it (:class:`~timing_executor.server_side.launchers.SpawnedProcess`), not
    ``subprocess``: a process forked from the server at that moment (Covalent's
    ``local`` forks its pool workers) keeps a copy of every pipe the server holds
    open, so the end of a pipe that ``subprocess`` waits for may never come.
    Measured: with a thread forking children that live 3 s, 31 of 100
    ``subprocess.run`` calls took over 2 s; a docs build hung on one ``squeue``."""
    with (
        _in_memory("stdin", input or b"") as stdin,
        _in_memory("stdout") as stdout,
        _in_memory("stderr") as stderr,
    ):
        argv = ["sh", "-c", f"cd || exit\n{command}"]
        status = SpawnedProcess(argv, {0: stdin, 1: stdout, 2: stderr}).wait()
        return CommandResult(status, _read_all(stdout), _read_all(stderr))


@contextmanager
def _in_memory(name: str, content: bytes = b"") -> Iterator[int]:
    """A file descriptor of an in-memory file that holds ``content``."""
    fd = os.memfd_create(name)
    try:
        with open(fd, "wb", closefd=False) as file:
            file.write(content)
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    """All that the in-memory file ``fd`` holds."""
    os.lseek(fd, 0, os.SEEK_SET)
    with open(fd, "rb", closefd=False) as file:
        return file.read()


_sessions: dict[tuple[SSHTarget, int], asyncio.Semaphore] = {}


class SSHShell:
    """Commands on another machine, over the connection ``ssh_connection`` keeps."""

    def __init__(self, target: SSHTarget) -> None:
        self.target, self.where = target, target.where

    async def run(self, command: str, input: bytes | None = None) -> CommandResult:
        key = (self.target, id(asyncio.get_running_loop()))
        async with _sessions.setdefault(
            key, asyncio.Semaphore(SESSIONS_PER_CONNECTION)
        ):
            try:
                return await self._run(command, input)
            except LoginFailed:
                raise
            except (asyncssh.Error, OSError):  # the connection dropped: once more
                discard(self.target)
                return await self._run(command, input)

    async def _run(self, command: str, input: bytes | None) -> CommandResult:
        ssh = await connection(self.target)
        done = await ssh.run(
            "sh -c " + shlex.quote(command), input=input, encoding=None
        )
        return CommandResult(
            done.exit_status, done.stdout or b"", done.stderr or b""
        )
