"""The jobs of a server that died: each job's mark, each server's lease, and the
cancelling of a gone server's jobs by another one.

Each server process has an owner id, :data:`OWNER`. Its tasks' folders in
``remote_workdir`` are named ``timing-task-<owner>-<random>``, and each job runs in
its task's folder (``--chdir``), which ``squeue`` shows (``%Z``): that is the job's
mark. While a server has tasks in a ``remote_workdir``, a file there,
``timing-lease-<owner>``, holds the time until which it counts as alive, by the
clock of the machine the Slurm commands run on; the server moves that time forward
at every poll, and removes the file when its last task there has ended. A server
whose lease has expired is gone: another server that polls jobs in the same
``remote_workdir`` cancels its jobs (its user's only, with that owner's mark) and
removes its folders and its lease.
"""

import asyncio
import math
import re
import shlex
import uuid

from timing_executor.server_side.shells import Shell
from timing_executor.server_side.ssh_connection import remote_quote

#: This server's mark on its jobs and its lease, one for each server process.
OWNER = uuid.uuid4().hex[:12]
TASK_FOLDER_PREFIX = "timing-task-"
LEASE_PREFIX = "timing-lease-"
#: Starts each line of :func:`expired_leases` (``expired|<index>|<owner>``).
EXPIRED = "expired"
_OWNER_ID = re.compile(r"[0-9a-f]{12}")


def task_folder(workdir: str) -> str:
    """A new folder name for one of this server's tasks in ``workdir``."""
    return f"{workdir}/{TASK_FOLDER_PREFIX}{OWNER}-{uuid.uuid4().hex}"


# --8<-- [start:leases]
def renew_lease(folder: str, seconds: float) -> str:
    """Shell lines that move this server's lease in ``folder`` (a shell word) to
    ``seconds`` from now by the machine's clock, never back; written whole."""
    lease = f"{folder}/{LEASE_PREFIX}{OWNER}"
    new = f"{folder}/{LEASE_PREFIX}new-{OWNER}"
    return "\n".join(
        [
            f"until=$(( $(date +%s) + {math.ceil(seconds)} )); old=",
            f'{{ read -r old < {lease}; }} 2>/dev/null; [ "$old" -gt "$until" ] '
            "2>/dev/null && until=$old",
            f'echo "$until" > {new} && mv -f {new} {lease}',
        ]
    )


def expired_leases(workdirs: list[str]) -> str:
    """Shell lines that print one :data:`EXPIRED` line for each lease of this user
    in ``workdirs`` whose time has passed."""
    lines = ["now=$(date +%s)"]
    for index, workdir in enumerate(workdirs):
        leases = f"{shlex.quote(workdir)}/{LEASE_PREFIX}"
        lines += [
            f"for lease in {leases}*; do",
            '  [ -O "$lease" ] || continue; until=',
            '  { read -r until < "$lease"; } 2>/dev/null',
            '  [ "$until" -lt "$now" ] 2>/dev/null && '
            f'echo "{EXPIRED}|{index}|${{lease##*/{LEASE_PREFIX}}}"',
            "done",
        ]
    return "\n".join(lines)


def expired_lease(line: str, workdirs: list[str]) -> tuple[str, str] | None:
    """``(workdir, owner)`` of an :data:`EXPIRED` line about another server."""
    _, index, owner = line.split("|", 2)
    if owner == OWNER or not _OWNER_ID.fullmatch(owner):
        return None  # its own lease, a new lease being written, or not a lease
    return workdirs[int(index)], owner


def reap(workdir: str, owner: str, cancel: str) -> str:
    """The command that runs ``cancel`` (shell lines that cancel the gone
    ``owner``'s jobs and wait for their end) and removes its task folders and
    lease in ``workdir``, if its lease still has expired."""
    folder = shlex.quote(workdir)
    lease = f"{folder}/{LEASE_PREFIX}{owner}"
    return (
        f"until=; {{ read -r until < {lease}; }} 2>/dev/null\n"
        f'if [ -O {lease} ] && [ "$until" -lt "$(date +%s)" ] 2>/dev/null; then\n'
        f"{cancel}\nrm -rf {folder}/{TASK_FOLDER_PREFIX}{owner}-* {lease}\nfi"
    )


# --8<-- [end:leases]


class Workdir:
    """``remote_workdir`` on one machine, as this server uses it: its absolute
    path, and the ``orphan_timeout`` of each of this server's tasks in it (while
    there are any, its lease there is kept)."""

    def __init__(self, given: str) -> None:
        self.given, self.path = given, ""
        self.timeouts: list[float] = []
        # Held while the first task takes the lease, and while the last ends it.
        self._changing = asyncio.Lock()

    @property
    def lease(self) -> str:
        return shlex.quote(f"{self.path}/{LEASE_PREFIX}{OWNER}")

    async def enter(self, shell: Shell, orphan_timeout: float) -> None:
        """Count a task in; for the first, make the folder and take the lease."""
        async with self._changing:
            if not self.timeouts:
                workdir = remote_quote(self.given)
                made = await shell.run(
                    f"mkdir -p {workdir} && cd {workdir} && pwd -P && "
                    + renew_lease(".", orphan_timeout)
                )
                if made.status != 0:
                    raise RuntimeError(
                        f"{shell.where}: cannot make remote_workdir "
                        f"{self.given!r}: {made.error()}"
                    )
                self.path = made.stdout.decode().strip()
            self.timeouts.append(orphan_timeout)

    async def leave(self, shell: Shell, orphan_timeout: float) -> None:
        """Count a task out (its folder removed); after the last, end the lease."""
        async with self._changing:
            self.timeouts.remove(orphan_timeout)
            if not self.timeouts:
                await shell.run(f"rm -f {self.lease}")

    def renewal(self) -> str:
        """Shell lines that keep this server's lease, or none if it has no task."""
        if not self.timeouts:
            return ""
        return renew_lease(shlex.quote(self.path), max(self.timeouts))


_workdirs: dict[tuple[str, str, int], Workdir] = {}


def workdir_of(shell: Shell, remote_workdir: str) -> Workdir:
    """``remote_workdir`` where ``shell`` runs, for this event loop."""
    key = (shell.where, remote_workdir, id(asyncio.get_running_loop()))
    if key not in _workdirs:
        _workdirs[key] = Workdir(remote_workdir)
    return _workdirs[key]
