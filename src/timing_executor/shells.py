"""Run shell commands on the server's own machine or over SSH, the same way: what
the Slurm executor needs to submit jobs, ask for their state and move their files,
wherever ``sbatch`` is.

Commands run through ``sh -c`` in the user's home folder, so relative paths start
there on both sides.
"""

import asyncio
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import asyncssh

from timing_executor.ssh_connection import (
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

    Each runs with ``subprocess.run`` in a thread of this pool, which waits for
    its own child, not as an asyncio subprocess: under the server's uvloop, one
    ``squeue`` of the Slurm poller, started that way, never returned though it had
    ended (seen once in a docs build; its jobs' nodes stayed RUNNING)."""

    where = "this machine"
    _threads = ThreadPoolExecutor(8, thread_name_prefix="local-shell")

    async def run(self, command: str, input: bytes | None = None) -> CommandResult:
        done = await asyncio.get_running_loop().run_in_executor(
            self._threads,
            partial(
                subprocess.run,
                ["sh", "-c", command],
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                cwd=Path.home(),
            ),
        )
        return CommandResult(done.returncode, done.stdout, done.stderr)


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
