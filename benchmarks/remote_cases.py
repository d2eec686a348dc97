"""Cases R and S: tasks run on another machine, against the upstream plugins.

R (SSH): ``SSHTimingExecutor`` (``ssh_timing``), covalent-ssh-plugin's
``SSHExecutor`` (``ssh``) and Covalent's ``local``, on one real sshd on 127.0.0.1,
whose ``MaxStartups`` is sshd's default, ``10:30:100``: beyond 10 connections being
authenticated at once it drops some, and ``SSHExecutor``, which opens one connection
per task, retries each dropped one after 5 s. So ``SSHExecutor`` runs the timed
dispatches a second time (``ssh_unthrottled``) on a second sshd that drops none
(``MaxStartups 1000``), and both sshds log every connection they drop.
S (Slurm): ``SlurmTimingExecutor`` (``slurm_timing``) and covalent-slurm-plugin's
``SlurmExecutor`` (``slurm``), both submitting over SSH (the same kind of sshd) to
one real single-node Slurm cluster (2 CPUs: 2 jobs at once).

The remote side, the sshd's Python and the jobs', is a venv with Covalent only
(``TIMING_EXECUTOR_READER_VENV`` keeps it between runs). Both upstream plugins
must be installed beside this package, in the server's environment: the server
finds executors by their entry points.

How the upstream plugins are made to run here (nothing of theirs is changed):

- ``SSHExecutor`` and ``SlurmExecutor`` take no port: they connect to a host alias
  that ``~/.ssh/config`` in the Covalent server's home maps to the sshd's port
  (asyncssh reads it), and check no host key (``known_hosts=None``).
- ``SlurmExecutor`` always activates conda and exits 99 without it: its
  ``bashrc_path`` is a shim that defines ``conda`` as a no-op and puts the
  Covalent-only venv first on the ``PATH``. It reads ``SLURM_CONF`` from the SSH
  session, which the sshd sets (``SetEnv``); its ``poll_freq`` is at least 5 s.
- Both get absolute remote folders: their commands run in the sshd user's real
  home, and their relative defaults would write there.

Timed dispatches of ``ssh_timing`` and ``slurm_timing`` start cold: each gets a
``connect_timeout`` of its own, so the server opens a new connection for it (and
``ssh_timing`` a new launcher), as on a server that has not used the host yet.
The yes/no figures (1: yes, 0: no) and the counts of files left are taken once,
after the repetitions. ``SlurmTimingExecutor`` polls every 2 s (its default),
``SlurmExecutor`` every 5 s (its minimum); both run the task without ``srun``.
"""

import itertools
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from pathlib import Path

import cloudpickle
import covalent as ct
import psutil
from covalent_slurm_plugin.slurm import SlurmExecutor
from covalent_ssh_plugin.ssh import SSHExecutor

from benchmarks import cases, measures, tasks
from covalent_plugin_testing.server import running_server
from covalent_plugin_testing.slurm_cluster import running_slurm_cluster
from covalent_plugin_testing.ssh_server import SSHServer, running_ssh_server
from tests.covalent_only_venv import covalent_only_python, venv_folder
from timing_executor.slurm_timing import SlurmTimingExecutor
from timing_executor.ssh_timing import SSHTimingExecutor

#: label -> what it is, for the tables.
LABELS = {
    "ssh_timing": "timing_executor SSHTimingExecutor",
    "ssh": "covalent-ssh-plugin 0.24.1 SSHExecutor",
    "ssh_unthrottled": "covalent-ssh-plugin 0.24.1 SSHExecutor, on an sshd that drops none",
    "slurm_timing": "timing_executor SlurmTimingExecutor, over SSH",
    "slurm": "covalent-slurm-plugin 0.18.0 SlurmExecutor, over SSH",
}
#: The upstream plugins' labels: a timed dispatch of theirs that fails is counted (its
#: failed tasks), not fatal; one of this package's executors that fails ends the case.
UPSTREAM = ("ssh", "ssh_unthrottled", "slurm")
#: The host name the upstream plugins connect to: ``~/.ssh/config`` maps it.
SSH_ALIAS = "bench-sshd"
#: The host name of case R's second sshd, which drops no connection.
UNTHROTTLED_ALIAS = "bench-sshd-unthrottled"
#: sshd settings of the bench: VERBOSE logs each connection dropped past MaxStartups.
LOGS_DROPS = {"LogLevel": "VERBOSE"}
DROPS_NONE = {**LOGS_DROPS, "MaxStartups": "1000"}
#: Seconds a dispatch may take before the case gives up on it.
DISPATCH_LIMIT = 600
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
_fresh = itertools.count()


# --- the remote side -------------------------------------------------------------


def covalent_only(workdir: Path) -> str:
    """The Python of a venv with Covalent only (made once per run, or kept where
    ``TIMING_EXECUTOR_READER_VENV`` says)."""
    return covalent_only_python(venv_folder(workdir / "covalent-only-venv"))


def write_ssh_aliases(home: Path, aliases: dict[str, SSHServer]) -> None:
    """Map each alias to its sshd's port in ``home/.ssh/config``: the upstream plugins
    have no port option."""
    folder = home / ".ssh"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = folder / "config"
    config.write_text(
        "".join(
            f"Host {alias}\n    HostName {sshd.host}\n    Port {sshd.port}\n"
            for alias, sshd in aliases.items()
        )
    )
    config.chmod(0o600)


def other_host_key(folder: Path, sshd: SSHServer, host: str) -> Path:
    """A known_hosts file in ``folder`` that holds another key for ``sshd`` as ``host``."""
    key = folder / "other_host_key"  # a throwaway pair: its public half is written
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    kind, text = key.with_suffix(".pub").read_text().split()[:2]
    known_hosts = folder / "known_hosts"
    names = {f"[{sshd.host}]:{sshd.port}", f"[{host}]:{sshd.port}", host}
    known_hosts.write_text("".join(f"{name} {kind} {text}\n" for name in sorted(names)))
    return known_hosts


def fresh_timeout() -> float:
    """A ``connect_timeout`` no executor had yet: the server keeps one connection per
    target (host, port, user, key, known_hosts and timeout), so it opens a new one."""
    return 30.0 + next(_fresh) / 1000


def logins(sshd: SSHServer) -> int:
    return sshd.log.read_text(errors="replace").count("Accepted publickey")


def dropped(sshd: SSHServer) -> int:
    """Connections ``sshd`` dropped past ``MaxStartups`` (logged at VERBOSE)."""
    return sshd.log.read_text(errors="replace").count("past MaxStartups")


def retries(server_log: Path) -> int:
    """The connection retries ``SSHExecutor`` logged (``... | retry N/5)``)."""
    if not server_log.exists():
        return 0
    return server_log.read_text(errors="replace").count(" | retry ")


def files_in(*folders: Path) -> int:
    return sum(
        1 for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()
    )


# --- dispatches ------------------------------------------------------------------


def settled(dispatch_id: str, limit: float = DISPATCH_LIMIT):
    """The dispatch's result once it has ended (raises after ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    while str(ct.get_result(dispatch_id).status) not in TERMINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(f"dispatch {dispatch_id} did not end within {limit:g} s")
        time.sleep(0.2)
    return ct.get_result(dispatch_id, wait=True)


def node_results(result) -> dict[str, dict]:
    """Each electron's node result, by electron name."""
    graph = result.lattice.transport_graph
    return {
        graph.get_node_value(node, "name"): result.get_node_result(node)
        for node in graph._graph.nodes
    }


class Timings:
    """The timed dispatches of one repetition of a case: seconds from dispatch to done
    for each workload and variant, then each one's ratio to the first variant's."""

    def __init__(self, out: cases.CaseResult, case: str, rep: int) -> None:
        self.out, self.case, self.rep = out, case, rep
        self.elapsed: dict[str, dict[str, float]] = {}

    def dispatch(self, what: str, variant: str, workflow, *args):
        """Dispatch ``workflow(*args)`` and wait for it; record its seconds as ``what,
        dispatch to done (s)``; return its result, or None if it did not complete.
        Only an upstream plugin's dispatch may fail: its failed tasks are counted."""
        start = time.perf_counter()
        result = settled(ct.dispatch(workflow)(*args))
        seconds = time.perf_counter() - start
        if str(result.status) != "COMPLETED":
            if variant not in UPSTREAM:
                raise RuntimeError(f"{variant}: {what} ended {result.status}: {result.error}")
            failed = sum(str(node["status"]) == "FAILED" for node in node_results(result).values())
            self.out.add(self.case, variant, f"{what}, tasks failed", failed, self.rep)
            return None
        self.elapsed.setdefault(what, {})[variant] = seconds
        self.out.add(self.case, variant, f"{what}, dispatch to done (s)", seconds, self.rep)
        return result

    def trivial_tasks(self, side, variants, workdir: Path, count: int) -> None:
        """Dispatch ``count`` trivial tasks with each variant of ``side``, on a new
        connection each; record the SSH logins each made for them."""
        what = f"{count} trivial tasks"
        for variant in variants:
            log = workdir / f"{self.case}-{variant}-{self.rep}.log"
            executor = side.make(variant, log, fresh=True)
            sshd = side.sshd_of(variant)
            before = logins(sshd), dropped(sshd), retries(side.server_log)
            self.dispatch(what, variant, tasks.trivial_workflow(executor, count), count)
            if variant == "local":
                continue
            after = logins(sshd), dropped(sshd), retries(side.server_log)
            metrics = (
                f"SSH logins for the {what}",
                f"connections the sshd dropped (MaxStartups) for the {what}",
                f"connection retries logged for the {what}",
            )
            for metric, old, new in zip(metrics, before, after, strict=True):
                self.out.add(self.case, variant, metric, new - old, self.rep)

    def ratios(self, baseline: str) -> None:
        """Each variant's time / ``baseline``'s, for each workload ``baseline`` did."""
        for what, by_variant in self.elapsed.items():
            if baseline not in by_variant:
                continue
            for variant, seconds in by_variant.items():
                ratio = seconds / by_variant[baseline]
                self.out.add(
                    self.case, variant, f"{what}, time / {baseline} time", ratio, self.rep
                )


def one_task(executor, task: Callable, *args):
    """A workflow of one electron that runs ``task(*args)`` with ``executor``."""
    electron = ct.electron(task, executor=executor)

    @ct.lattice
    def workflow():
        return electron(*args)

    return workflow


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for_file(path: Path, limit: float = 120) -> str:
    deadline = time.monotonic() + limit
    while not path.exists() or not path.read_text():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not written within {limit:g} s")
        time.sleep(0.05)
    time.sleep(0.05)
    return path.read_text()


# The tasks of the yes/no figures. This module is not on the remote Python's path:
# its functions go there by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def prints_a_marker():
    print("BENCH-STDOUT-MARKER")
    return 1


def raises():
    raise ValueError("bench: this task fails")


def exits_hard():
    import os

    os._exit(3)


def naps_with_its_pid(pid_file: str, seconds: float):
    import os
    import time
    from pathlib import Path

    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def stdout_reaches_the_node(executor) -> int:
    result = settled(ct.dispatch(one_task(executor, prints_a_marker))())
    node = node_results(result)["prints_a_marker"]
    return int("BENCH-STDOUT-MARKER" in (node["stdout"] or ""))


# --- case R: SSH -----------------------------------------------------------------


class SSHSide:
    """The sshds of case R (sshd's default ``MaxStartups``, and one that drops no
    connection), and executors of each label for them."""

    def __init__(
        self, sshd: SSHServer, unthrottled: SSHServer, workdir: Path, server_log: Path
    ) -> None:
        self.sshd, self.unthrottled, self.workdir = sshd, unthrottled, workdir
        self.server_log = server_log

    def sshd_of(self, label: str) -> SSHServer:
        return self.unthrottled if label == "ssh_unthrottled" else self.sshd

    def folder(self, name: str, sshd: SSHServer | None = None) -> Path:
        """A new folder in the remote user's home, for one executor's files."""
        home = (sshd or self.sshd).home
        return Path(tempfile.mkdtemp(dir=home, prefix=f"{name}-"))

    def make(self, label: str, log_path: Path, known_hosts: str = "", fresh: bool = False):
        """The executor called ``label``; its remote folders are new ones. ``fresh``:
        ``ssh_timing`` opens a connection (and starts a launcher) of its own."""
        sshd = self.sshd
        if label == "local":
            return "local"
        if label == "ssh_timing":
            return SSHTimingExecutor(
                hostname=sshd.host,
                port=sshd.port,
                username=sshd.username,
                ssh_key_file=sshd.key_file,
                known_hosts=known_hosts or sshd.known_hosts,
                python_path=sshd.python,
                remote_workdir=str(self.folder("ssh_timing-workdir")),
                connect_timeout=fresh_timeout() if fresh else 10.0,
                timing_filepath=log_path,
            )
        if label in ("ssh", "ssh_unthrottled"):
            sshd = self.sshd_of(label)
            cache = Path(tempfile.mkdtemp(dir=self.workdir, prefix="ssh-local-cache-"))
            return SSHExecutor(
                username=sshd.username,
                hostname=UNTHROTTLED_ALIAS if label == "ssh_unthrottled" else SSH_ALIAS,
                ssh_key_file=sshd.key_file,
                cache_dir=str(cache),
                python_path=sshd.python,
                remote_cache=str(self.folder("ssh-cache", sshd)),
                remote_workdir=str(self.folder("ssh-workdir", sshd)),
            )
        raise ValueError(f"unknown SSH executor label {label!r}: use one of {list(LABELS)}")

    @staticmethod
    def remote_folders(executor) -> list[Path]:
        if isinstance(executor, SSHExecutor):
            return [Path(executor.remote_cache), Path(executor.remote_workdir)]
        return [Path(executor.remote_workdir)]


def _ssh_timings(
    side: SSHSide,
    variants,
    rep: int,
    workdir: Path,
    out: cases.CaseResult,
    trivial: int,
    sleepers: int,
    nap: float,
) -> None:
    """One repetition of the timed dispatches of case R, with their ratios to ``ssh``."""
    timings = Timings(out, "R", rep)
    timings.trivial_tasks(side, variants, workdir, trivial)
    what = f"{sleepers} x sleep({nap:g})"
    for variant in variants:
        executor = side.make(variant, workdir / f"R-sleep-{variant}-{rep}.log", fresh=True)
        workflow = tasks.sleep_workflow(executor, sleepers, nap)
        result = timings.dispatch(what, variant, workflow, sleepers)
        if result is None:
            continue
        intervals = [tuple(interval) for interval in result.result]
        out.add("R", variant, f"{what}, span (s)", measures.span(intervals), rep)
        out.add("R", variant, f"{what}, most at once", measures.most_at_once(intervals), rep)
    timings.ratios(variants[0])


def _ssh_evidence(side: SSHSide, labels, workdir: Path, server_home: Path, out) -> None:
    """The yes/no figures of case R, for each of ``labels``."""
    sshd = side.sshd
    # A host whose key changed: the server's ~/.ssh/known_hosts (and ssh_timing's
    # known_hosts file) hold another key for it.
    changed = other_host_key(Path(tempfile.mkdtemp(dir=workdir)), sshd, SSH_ALIAS)
    user_known_hosts = server_home / ".ssh" / "known_hosts"
    user_known_hosts.write_text(changed.read_text())
    try:
        for label in labels:
            executor = side.make(label, workdir / f"R-key-{label}.log", str(changed))
            result = settled(ct.dispatch(one_task(executor, prints_a_marker))())
            connected = int(str(result.status) == "COMPLETED")
            out.add("R", label, "connects to a host whose key changed (1: yes)", connected, 0)
    finally:
        user_known_hosts.unlink()

    for label in labels:
        executor = side.make(label, workdir / f"R-stdout-{label}.log")
        reached = stdout_reaches_the_node(executor)
        out.add("R", label, "the task's stdout reaches the node's result (1: yes)", reached, 0)

    for label in labels:
        for what, task in (("raised", raises), ("called os._exit(3)", exits_hard)):
            executor = side.make(label, workdir / f"R-fail-{label}.log")
            result = settled(ct.dispatch(one_task(executor, task))())
            if str(result.status) != "FAILED":
                raise RuntimeError(f"{label}: a task that {what} ended {result.status}")
            time.sleep(1)  # let a cleanup that runs after the node's end finish
            left = files_in(*side.remote_folders(executor))
            metric = f"files left in the remote folders after a task that {what}"
            out.add("R", label, metric, left, 0)

    for label in labels:
        executor = side.make(label, workdir / f"R-cancel-{label}.log")
        pid_file = Path(tempfile.mkdtemp(dir=workdir)) / "pid"
        dispatch_id = ct.dispatch(one_task(executor, naps_with_its_pid, str(pid_file), 60.0))()
        pid = int(wait_for_file(pid_file))
        ct.cancel(dispatch_id)
        time.sleep(5)
        still = int(running(pid))
        out.add("R", label, "the task still runs 5 s after ct.cancel (1: yes)", still, 0)
        if still:
            with suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()  # so the dispatch ends now
        result = settled(dispatch_id, limit=120)
        status = str(node_results(result)["naps_with_its_pid"]["status"])
        out.add(
            "R",
            label,
            "the node ends CANCELLED after ct.cancel (1: yes)",
            int(status == "CANCELLED"),
            0,
        )


def on_ssh(
    side: SSHSide,
    server_home: Path,
    repetitions: int,
    workdir: Path,
    trivial: int = 100,
    sleepers: int = 20,
    nap: float = 1.0,
    cpu_tasks: int = 4,
    cpu_seconds: float = 0.5,
    variants: tuple[str, ...] = ("ssh", "ssh_timing", "local", "ssh_unthrottled"),
) -> cases.CaseResult:
    """R, on a server whose home maps :data:`SSH_ALIAS` to ``side``'s sshd."""
    out = cases.CaseResult()
    for rep in range(repetitions):
        _ssh_timings(side, variants, rep, workdir, out, trivial, sleepers, nap)
    make = side.make
    out.extend(
        cases.accuracy(["ssh_timing"], repetitions, workdir, cpu_tasks, cpu_seconds, "R", make)
    )
    remote = [label for label in variants if label in ("ssh", "ssh_timing")]
    _ssh_evidence(side, remote, workdir, server_home, out)
    return out


def ssh_case(
    root: Path, port: int, extra_env: dict, repetitions: int, workdir: Path, **sizes
) -> cases.CaseResult:
    """Case R with everything it needs: a Covalent-only Python, an sshd, a server."""
    python = covalent_only(workdir)
    with (
        running_ssh_server(workdir / "R-sshd", python, extra_config=LOGS_DROPS) as sshd,
        running_ssh_server(workdir / "R-sshd-2", python, extra_config=DROPS_NONE) as second,
    ):
        home = root / "server-R"
        write_ssh_aliases(home, {SSH_ALIAS: sshd, UNTHROTTLED_ALIAS: second})
        with running_server(home, port, extra_env=extra_env):
            cases.warm_up()
            side = SSHSide(sshd, second, workdir, home / ".cache" / "covalent" / "covalent_ui.log")
            return on_ssh(side, home, repetitions, workdir, **sizes)


# --- case S: Slurm ---------------------------------------------------------------


class SlurmSide:
    """The cluster and sshd of case S, and executors of each label for them."""

    def __init__(
        self, cluster, sshd: SSHServer, bashrc: Path, workdir: Path, server_log: Path
    ) -> None:
        self.cluster, self.sshd, self.bashrc, self.workdir = cluster, sshd, bashrc, workdir
        self.server_log = server_log

    def sshd_of(self, label: str) -> SSHServer:
        return self.sshd

    def folder(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(dir=self.sshd.home, prefix=f"{name}-"))

    def make(self, label: str, log_path: Path, fresh: bool = False):
        """The executor called ``label``, as :meth:`SSHSide.make`."""
        sshd = self.sshd
        if label == "slurm_timing":
            return SlurmTimingExecutor(
                hostname=sshd.host,
                port=sshd.port,
                username=sshd.username,
                ssh_key_file=sshd.key_file,
                known_hosts=sshd.known_hosts,
                connect_timeout=fresh_timeout() if fresh else 10.0,
                python_path=sshd.python,
                remote_workdir=str(self.folder("slurm_timing-workdir")),
                slurm_conf=str(self.cluster.conf),
                timing_filepath=log_path,
            )
        if label == "slurm":
            cache = Path(tempfile.mkdtemp(dir=self.workdir, prefix="slurm-local-cache-"))
            return SlurmExecutor(
                username=sshd.username,
                address=SSH_ALIAS,
                ssh_key_file=sshd.key_file,
                remote_workdir=str(self.folder("slurm-workdir")),
                bashrc_path=str(self.bashrc),
                use_srun=False,  # as slurm_timing's default
                cache_dir=str(cache),
            )
        raise ValueError(f"unknown Slurm executor label {label!r}: use one of {list(LABELS)}")


def _slurm_timings(
    side: SlurmSide,
    variants,
    rep: int,
    workdir: Path,
    out,
    trivial: int,
    cpu_tasks: int,
    cpu_seconds: float,
) -> None:
    """One repetition of the timed dispatches of case S, with their ratios to ``slurm``."""
    timings = Timings(out, "S", rep)
    timings.trivial_tasks(side, variants, workdir, trivial)
    what = f"{cpu_tasks} CPU-bound tasks at a barrier"
    for variant in variants:
        log = workdir / f"S-cpu-{variant}-{rep}.log"
        executor = side.make(variant, log, fresh=True)
        barrier = tempfile.mkdtemp(dir=workdir, prefix=f"S-{variant}-{rep}-barrier-")
        workflow = tasks.cpu_workflow(executor, cpu_tasks, cpu_seconds, barrier, 120)
        result = timings.dispatch(what, variant, workflow, cpu_tasks)
        if result is None:
            continue
        outputs = tasks.electron_outputs(result, "burn")
        met = sum(met for *_, met in outputs.values())
        out.add("S", variant, "tasks that met the barrier", met, rep)
        if variant == "slurm_timing":
            recorded = measures.recorded_cpu_seconds(log.read_text(), result.dispatch_id)
            ratios = [recorded[node] / cpu for node, (cpu, *_) in outputs.items()]
            out.add("S", variant, "recorded / true, median task", measures.median(ratios), rep)
            out.add("S", variant, "recorded / true, worst task", max(ratios), rep)
    timings.ratios(variants[0])


def _slurm_evidence(side: SlurmSide, labels, workdir: Path, out) -> None:
    cluster = side.cluster
    for label in labels:
        reached = stdout_reaches_the_node(side.make(label, workdir / f"S-stdout-{label}.log"))
        out.add("S", label, "the task's stdout reaches the node's result (1: yes)", reached, 0)

    for label in labels:
        cluster.wait_until_idle()
        executor = side.make(label, workdir / f"S-cancel-{label}.log")
        pid_file = Path(tempfile.mkdtemp(dir=workdir)) / "pid"
        dispatch_id = ct.dispatch(one_task(executor, naps_with_its_pid, str(pid_file), 120.0))()
        wait_for_file(pid_file)
        (job_id,) = cluster.job_ids()
        cancelled_at = time.monotonic()
        ct.cancel(dispatch_id)
        gone_after = None
        while time.monotonic() - cancelled_at < 10:
            if job_id not in cluster.job_ids():
                gone_after = time.monotonic() - cancelled_at
                break
            time.sleep(0.1)
        out.add(
            "S",
            label,
            "the job is still in squeue 10 s after ct.cancel (1: yes)",
            int(gone_after is None),
            0,
        )
        if gone_after is not None:
            out.add(
                "S", label, "seconds from ct.cancel to the job gone from squeue", gone_after, 0
            )
        else:
            cluster.run("scancel", job_id)  # so the dispatch ends now
        result = settled(dispatch_id, limit=120)
        status = str(node_results(result)["naps_with_its_pid"]["status"])
        out.add(
            "S",
            label,
            "the node ends CANCELLED after ct.cancel (1: yes)",
            int(status == "CANCELLED"),
            0,
        )


def on_slurm(
    side: SlurmSide,
    repetitions: int,
    workdir: Path,
    trivial: int = 20,
    cpu_tasks: int = 2,
    cpu_seconds: float = 0.5,
    variants: tuple[str, ...] = ("slurm", "slurm_timing"),
) -> cases.CaseResult:
    """S, on a server whose home maps :data:`SSH_ALIAS` to ``side``'s sshd."""
    out = cases.CaseResult()
    for rep in range(repetitions):
        _slurm_timings(side, variants, rep, workdir, out, trivial, cpu_tasks, cpu_seconds)
    _slurm_evidence(side, variants, workdir, out)
    return out


@contextmanager
def slurm_over_ssh(workdir: Path, python: str):
    """A Slurm cluster and an sshd whose sessions reach it (``SLURM_CONF``), with a
    ``bashrc`` shim for ``SlurmExecutor`` in the sshd's home."""
    with running_slurm_cluster(workdir / "S-cluster") as cluster:
        folder = workdir / "S-sshd"
        home = folder / "home"  # as the fixture's own SetEnv, which comes later and loses
        set_env = f"HOME={home} TMPDIR={home / 'tmp'} SLURM_CONF={cluster.conf}"
        settings = {**LOGS_DROPS, "SetEnv": set_env}
        with running_ssh_server(folder, python, extra_config=settings) as sshd:
            bashrc = sshd.home / "bench-bashrc"
            venv_bin = Path(python).parent
            bashrc.write_text(f"conda() {{ return 0; }}\nexport PATH={venv_bin}:$PATH\n")
            yield cluster, sshd, bashrc


def slurm_case(
    root: Path, port: int, extra_env: dict, repetitions: int, workdir: Path, **sizes
) -> cases.CaseResult:
    """Case S with everything it needs: a Covalent-only Python, a Slurm cluster, an
    sshd, a server."""
    python = covalent_only(workdir)
    with slurm_over_ssh(workdir, python) as (cluster, sshd, bashrc):
        home = root / "server-S"
        write_ssh_aliases(home, {SSH_ALIAS: sshd})
        with running_server(home, port, extra_env=extra_env):
            cases.warm_up()
            server_log = home / ".cache" / "covalent" / "covalent_ui.log"
            side = SlurmSide(cluster, sshd, bashrc, workdir, server_log)
            return on_slurm(side, repetitions, workdir, **sizes)
