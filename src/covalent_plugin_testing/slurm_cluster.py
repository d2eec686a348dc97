"""Start and stop a real single-node Slurm cluster on 127.0.0.1, for tests of Slurm
executor plugins: ``munged``, ``slurmctld`` and ``slurmd``, run as the current user
(root or not), with their files in one folder.

The node ``localhost`` has this machine's CPUs and memory (as ``slurmd -C`` finds
them) and is in the default partition ``debug``; jobs run as the current user.
Slurm commands reach the cluster through ``SLURM_CONF`` (``SlurmCluster.env``).
There is no accounting database: ``sacct`` refuses, ``sstat`` answers only while a
job runs, and ``scontrol show job`` forgets a job ``MinJobAge`` seconds (300 unless
``min_job_age`` says) after its end.

Things Slurm does that tests meet: a job starts about a second after its submission
(the first one up to 3 seconds after the cluster starts). A job's time limit has a
resolution of a minute, and slurmctld checks time limits every 30 seconds from its
start, so a job with ``--time=1`` ends (``TIMEOUT``) 60 to 90 seconds after it starts.
The processes a job leaves running in the background, in its session or a new one,
outlive it (job processes are tracked as a process tree, ``proctrack/linuxproc``:
cgroups need root); they are killed when the cluster stops.

On exit every job is cancelled and every process the cluster started is stopped,
job processes included, also after an error.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covalent_plugin_testing.processes import free_ports, listens, stop_process

START_TIMEOUT_SECONDS = 60
STOP_GRACE_SECONDS = 5
COMMAND_TIMEOUT_SECONDS = 60
#: The Debian and Ubuntu packages of the programs a cluster needs.
PACKAGES = "slurm-wlm munge"
PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
#: Where the daemons are installed; an ordinary user's ``PATH`` often lacks them.
_SBIN_FOLDERS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
#: A Unix socket's path holds at most 107 bytes, and slurmd's step sockets
#: (``spool/localhost_<job>.<step>``) add up to 39 to the cluster folder's path.
_MAX_SOCKET_ROOT = 64
#: The daemons' logs, and their output (with the errors from before a log is open).
_LOG_FILES = ("munged.log", "slurmctld.out", "slurmctld.log", "slurmd.out", "slurmd.log")


class SlurmNotFoundError(RuntimeError):
    """A program the cluster needs is not installed."""


@dataclass(frozen=True)
class SlurmCluster:
    """A running cluster: its folder, its ``slurm.conf`` and the environment
    (this process's, with ``SLURM_CONF``) in which Slurm commands reach it."""

    folder: Path
    conf: Path
    env: dict[str, str]
    name: str
    slurmctld_port: int
    slurmd_port: int
    partition: str = "debug"
    node: str = "localhost"

    def run(self, *command: str, **options: Any) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command (``squeue``, ``scontrol`` ...) against this cluster, its
        output captured as text; ``options`` go to :func:`subprocess.run`."""
        defaults = {"env": self.env, "capture_output": True, "text": True}
        defaults |= {"stdin": subprocess.DEVNULL, "timeout": COMMAND_TIMEOUT_SECONDS}
        return subprocess.run(command, **(defaults | options))

    def submit(self, script: str, *options: str, cwd: Path | None = None) -> str:
        """Submit the batch ``script`` (its text, ``#!`` line first) with ``sbatch
        --parsable *options`` in ``cwd`` (the cluster's folder unless given, where
        ``slurm-<id>.out`` goes by default); return the job's id."""
        cwd = cwd or self.folder
        done = self.run("sbatch", "--parsable", *options, input=script, stdin=None, cwd=cwd)
        if done.returncode:
            raise RuntimeError(f"sbatch failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip().split(";")[0]

    def job_ids(self) -> list[str]:
        """The ids of the jobs ``squeue`` lists: pending, running or completing."""
        return self.run("squeue", "--noheader", "--format=%A", check=True).stdout.split()

    def job_info(self, job_id: str) -> dict[str, str]:
        """What ``scontrol show job`` says of a job (``JobState``, ``Reason``,
        ``ExitCode`` ...), or ``{}`` once Slurm has forgotten it."""
        done = self.run("scontrol", "--oneliner", "show", "job", job_id)
        return dict(word.split("=", 1) for word in done.stdout.split() if "=" in word)

    def node_state(self) -> str:
        """The node's state as ``sinfo`` shows it: ``idle``, ``mixed``, ``allocated``,
        ``completing``, ``drained`` ... (``*`` after it if slurmd does not answer)."""
        done = self.run("sinfo", "--noheader", "--Node", f"--nodes={self.node}", "--format=%T")
        lines = done.stdout.split()  # one for each partition of the node
        return lines[0] if lines else f"unknown ({done.stderr.strip()})"

    def wait_until_idle(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Wait until no job is left and the node is idle (after each job it is
        ``completing`` for a moment)."""
        deadline = time.monotonic() + timeout
        while (state := self.node_state()) != "idle" or self.job_ids():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Slurm node {self.node} is {state}, not idle:\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        """The end of each daemon's log, for error messages."""
        return _logs(self.folder)


def find_programs() -> dict[str, str]:
    """The path of each of ``PROGRAMS``; raise :class:`SlurmNotFoundError`,
    which names the packages to install, if one is missing."""
    search_path = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN_FOLDERS])
    found = {name: shutil.which(name, path=search_path) for name in PROGRAMS}
    if missing := [name for name, path in found.items() if path is None]:
        raise SlurmNotFoundError(
            f"{', '.join(missing)} not found (searched PATH and {', '.join(_SBIN_FOLDERS)}): "
            f"a Slurm test cluster needs Slurm and MUNGE; on Debian or Ubuntu: "
            f"sudo apt install {PACKAGES}"
        )
    return {name: path for name, path in found.items() if path}


def node_hardware(slurmd: str = "slurmd") -> dict[str, str]:
    """This machine as ``slurmd -C`` finds it, in ``slurm.conf`` words: ``CPUs``,
    ``Boards``, ``SocketsPerBoard``, ``CoresPerSocket``, ``ThreadsPerCore`` and
    ``RealMemory`` (MB). slurmd drains a node configured with more than it finds."""
    done = subprocess.run(
        [slurmd, "-C"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
    first_line = done.stdout.partition("\n")[0]
    words = dict(word.split("=", 1) for word in first_line.split() if "=" in word)
    words.pop("NodeName", None)
    if done.returncode or "CPUs" not in words or "RealMemory" not in words:
        raise RuntimeError(f"slurmd -C failed ({done.returncode}): {done.stdout}{done.stderr}")
    return words


def _short_path(folder: Path, stack: ExitStack) -> Path:
    """``folder``, or if its path is too long for the Unix sockets in it (pytest's
    temporary folders often are), a symbolic link to it in ``/tmp``, removed on exit."""
    if len(str(folder)) <= _MAX_SOCKET_ROOT:
        return folder
    while True:
        link = Path("/tmp") / f"slurm-{secrets.token_hex(6)}"
        with suppress(FileExistsError):
            link.symlink_to(folder, target_is_directory=True)
            stack.callback(link.unlink, missing_ok=True)
            return link


def _memory_config(hardware: dict[str, str]) -> list[str]:
    """Settings that make Slurm kill a job over its ``--mem`` (without cgroups, which
    need root): memory is a consumable resource, a job that asks for none gets its
    CPUs' share of the node's, and each job's memory is checked every second."""
    share = int(hardware["RealMemory"]) // int(hardware["CPUs"])
    return [
        "SelectTypeParameters=CR_CPU_Memory",
        f"DefMemPerCPU={share}",
        "JobAcctGatherParams=OverMemoryKill",
        "JobAcctGatherFrequency=1",
    ]


def _slurm_conf(
    cluster: SlurmCluster, sockets: Path, hardware: dict[str, str], extra: Iterable[str]
) -> str:
    folder, user = cluster.folder, pwd.getpwuid(os.getuid()).pw_name
    node = " ".join(f"{key}={value}" for key, value in hardware.items())
    lines = [
        f"ClusterName={cluster.name}",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmUser={user}",
        f"SlurmdUser={user}",
        f"SlurmctldPort={cluster.slurmctld_port}",
        f"SlurmdPort={cluster.slurmd_port}",
        "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",  # else they listen on 0.0.0.0
        "AuthType=auth/munge",
        f"AuthInfo=socket={sockets / 'munge' / 'munge.socket'}",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={sockets / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        f"PlugStackConfig={folder / 'plugstack.conf'}",  # none of the system's SPANK plugins
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/linux",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SelectType=select/cons_tres",
        # CPUs, not cores: with hyperthreads a core would hold one job only.
        "SelectTypeParameters=CR_CPU",
        # Start a job within a second of its submission, not up to 3 seconds later.
        "SchedulerParameters=batch_sched_delay=0",
        "ReturnToService=2",
        "MpiDefault=none",
        "MailProg=/bin/true",
        f"NodeName={cluster.node} NodeAddr=127.0.0.1 {node} State=UNKNOWN",
        f"PartitionName={cluster.partition} Nodes={cluster.node} Default=YES "
        "MaxTime=INFINITE State=UP",
        *extra,  # a setting given twice: the last one counts
    ]
    return "\n".join(lines) + "\n"


def _logs(folder: Path) -> str:
    """The end of each daemon's log file and output (errors before it opens its log)."""
    parts = []
    for name in _LOG_FILES:
        path = folder / name
        if path.exists() and (lines := path.read_text(errors="replace").splitlines(True)):
            parts.append(f"--- {path} (end) ---\n" + "".join(lines[-30:]))
    return "".join(parts) or f"(no logs in {folder})"


def _start(
    command: list[str], log: Path, env: dict[str, str], cwd: Path | None = None
) -> subprocess.Popen:
    """Start a daemon (in the foreground), its output in ``log``."""
    with log.open("a") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process


def _stop(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    stop_process(process, grace)


def _start_munged(folder: Path, sockets: Path, programs: dict[str, str], stack: ExitStack) -> None:
    """Start ``munged`` with a new key, its socket in ``sockets/munge``.

    munged refuses a socket in a folder that another user cannot reach (any folder
    above it not world-executable), as pytest's temporary folders are (mode 700).
    ``--force`` makes it go on: every client of this munged runs as its user."""
    munge = folder / "munge"
    munge.mkdir(exist_ok=True)
    key = munge / "munge.key"
    if not key.exists():
        subprocess.run(
            [programs["mungekey"], "--create", f"--keyfile={key}"],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )
    socket_path = sockets / "munge" / "munge.socket"
    command = [
        programs["munged"], "--foreground", "--force", f"--socket={socket_path}",
        f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}",
        f"--log-file={folder / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}",
    ]  # fmt: skip
    process = _start(command, folder / "munged.log", dict(os.environ))
    stack.callback(_stop, process)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not socket_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"munged did not start:\n{_logs(folder)}")
        time.sleep(0.05)


class _PortTaken(RuntimeError):
    """A daemon's port was taken between the choice and the start."""


def _wait_for_node(
    cluster: SlurmCluster, slurmctld: subprocess.Popen, slurmd: subprocess.Popen
) -> None:
    """Wait until the node is idle. Slurm commands wait (10 s) for a slurmctld that does
    not answer: ask them only once it listens."""
    deadline, state = time.monotonic() + START_TIMEOUT_SECONDS, "not known yet"
    while (
        not listens(slurmctld.pid, cluster.slurmctld_port)
        or (state := cluster.node_state()) != "idle"
    ):
        if slurmctld.poll() is not None or slurmd.poll() is not None:
            logs = _logs(cluster.folder)
            if "Address already in use" in logs:
                raise _PortTaken(logs)
            raise RuntimeError(f"a Slurm daemon stopped while starting:\n{logs}")
        if time.monotonic() > deadline:
            message = f"Slurm node {cluster.node} is {state}, not idle"
            raise TimeoutError(f"{message} after {START_TIMEOUT_SECONDS} s:\n{cluster.logs()}")
        time.sleep(0.1)


def _processes_left(cluster: SlurmCluster) -> list:
    """The processes a cluster can leave: its ``slurmstepd`` processes (in slurmd's
    working folder) and its jobs' (``SLURM_JOB_ID`` and the cluster's name in their
    environment), also those in a session of their own."""
    import psutil

    found, own = [], {os.getpid(), *(parent.pid for parent in psutil.Process().parents())}
    for process in psutil.process_iter():
        try:
            if process.pid in own or process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.name() == "slurmstepd":
                if Path(process.cwd()) == cluster.folder / "slurmd":
                    found.append(process)
                continue
            env = process.environ()
            if env.get("SLURM_CLUSTER_NAME") == cluster.name and "SLURM_JOB_ID" in env:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def _kill_processes_left(cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while (processes := _processes_left(cluster)) and time.monotonic() < deadline:
        for process in processes:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, signal.SIGKILL)
        time.sleep(0.05)


def _end_jobs(cluster: SlurmCluster, slurmctld: subprocess.Popen) -> None:
    """Cancel every job and give them a moment to end."""
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    if not listens(slurmctld.pid, cluster.slurmctld_port):
        return  # no slurmctld to ask: the processes left are killed later
    with suppress(subprocess.SubprocessError, OSError):
        if jobs := cluster.job_ids():
            cluster.run("scancel", *jobs)
        while cluster.job_ids() and time.monotonic() < deadline:
            time.sleep(0.1)


def _start_cluster(
    folder: Path,
    programs: dict[str, str],
    extra: list[str],
    stack: ExitStack,
    *,
    memory_limits: bool,
) -> SlurmCluster:
    """Start munged, slurmctld and slurmd; register on ``stack`` what stops them."""
    sockets = _short_path(folder, stack)
    for name in _LOG_FILES:  # from an attempt before, or a cluster before
        (folder / name).unlink(missing_ok=True)
    for name in ("state", "spool", "slurmd"):  # a new cluster's, even in a folder used before
        shutil.rmtree(folder / name, ignore_errors=True)
        (folder / name).mkdir()
    (folder / "plugstack.conf").touch()
    conf = folder / "slurm.conf"
    env = dict(os.environ, SLURM_CONF=str(conf))
    cluster = SlurmCluster(folder, conf, env, f"test{secrets.token_hex(4)}", *free_ports(2))
    hardware = node_hardware(programs["slurmd"])
    if memory_limits:
        extra = [*_memory_config(hardware), *extra]
    conf.write_text(_slurm_conf(cluster, sockets, hardware, extra))
    _start_munged(folder, sockets, programs, stack)
    stack.callback(_kill_processes_left, cluster)  # after the daemons have stopped
    command = [programs["slurmctld"], "-D", "-c", "-f", str(conf)]
    slurmctld = _start(command, folder / "slurmctld.out", env)
    stack.callback(_stop, slurmctld)
    command = [programs["slurmd"], "-D", "-N", cluster.node, "-f", str(conf)]
    # Its slurmstepd processes inherit its working folder: that is how they are found.
    slurmd = _start(command, folder / "slurmd.out", env, cwd=folder / "slurmd")
    stack.callback(_stop_slurmd, slurmd, slurmctld)
    stack.callback(_end_jobs, cluster, slurmctld)
    _wait_for_node(cluster, slurmctld, slurmd)
    return cluster


def _stop_slurmd(slurmd: subprocess.Popen, slurmctld: subprocess.Popen) -> None:
    """Stop slurmd, which ignores SIGTERM while it cannot reach a slurmctld that
    has stopped."""
    _stop(slurmd, STOP_GRACE_SECONDS if slurmctld.poll() is None else 0.5)


@contextmanager
def running_slurm_cluster(
    folder: Path,
    *,
    extra_config: Iterable[str] = (),
    min_job_age: int | None = None,
    memory_limits: bool = False,
) -> Iterator[SlurmCluster]:
    """Run a one-node Slurm cluster with its files in ``folder``; yield it once its
    node is idle (a fraction of a second). On exit cancel every job, stop the daemons
    and kill any process left.

    ``extra_config`` lines end ``slurm.conf``: more partitions (``PartitionName=short
    Nodes=localhost MaxTime=1``), or settings that replace the ones written before.
    ``min_job_age`` sets ``MinJobAge``: how long (in seconds) ``scontrol show job``
    still knows a job after its end; slurmctld looks for such jobs every
    ``max(10, min_job_age)`` seconds. With ``memory_limits``, a job that uses more
    than its ``--mem`` is killed within a second (it ends ``FAILED``, reason
    ``JobLaunchFailure``, exit code ``0:9``, and its output says ``Exceeded job memory
    limit``; ``OUT_OF_MEMORY`` needs cgroups), and a job without ``--mem`` may use its
    CPUs' share of the node's memory.
    """
    programs = find_programs()
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    extra = [*([f"MinJobAge={min_job_age}"] if min_job_age is not None else []), *extra_config]
    for attempt in range(3):
        with ExitStack() as stack:
            try:
                cluster = _start_cluster(
                    folder, programs, extra, stack, memory_limits=memory_limits
                )
            except _PortTaken:
                if attempt == 2:
                    raise
                continue
            yield cluster
            return
