"""Case T: tasks staged through an S3 bucket and submitted through Slurm's REST API.

``BatchTimingExecutor`` (``batch_timing``) against ``SlurmTimingExecutor``
(``slurm_timing``, submitting with ``sbatch`` on this machine) on the same real
single-node Slurm (2 CPUs: 2 jobs at once), with the kit's S3 store (OpenStack Swift)
and slurmrestd. Both poll every 2 s (their default). The jobs run a venv with Covalent
only. Bytes through the object store are read from Swift's proxy log (what it
received plus what it sent, for the task's objects).
"""

import sys
import tempfile
from pathlib import Path

import cloudpickle

from benchmarks import cases, measures, tasks
from benchmarks.remote_cases import Timings, covalent_only, one_task
from covalent_plugin_testing.s3_server import running_s3_server
from covalent_plugin_testing.server import running_server
from covalent_plugin_testing.slurm_cluster import running_slurm_cluster
from covalent_plugin_testing.slurm_rest import rest_config, running_slurm_rest
from timing_executor.batch_timing import BatchTimingExecutor
from timing_executor.slurm_timing import SlurmTimingExecutor

VARIANTS = ("slurm_timing", "batch_timing")
PROFILE = "bench-s3"
RESULT_BYTES = 50 * 2**20


class Payload(bytes):
    """Bytes whose ``str()`` is short: Covalent keeps ``str()`` of every result,
    which for 50 MB of plain bytes costs the server tens of seconds."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"

    __str__ = __repr__


def returns_50_mb() -> Payload:
    return Payload(RESULT_BYTES)


# The task above goes to the job by value: the job's Python lacks this module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def object_store_bytes(proxy_log: Path, start: int) -> int:
    """Bytes Swift's proxy received and sent for task objects, in the log after
    offset ``start``: after the user agent come the token, bytes in, bytes out."""
    total = 0
    with open(proxy_log, "rb") as log:
        log.seek(start)
        for line in log.read().decode(errors="replace").splitlines():
            fields = line.split()
            if len(fields) < 13 or "/timing-tasks/" not in fields[5]:
                continue
            total += sum(int(value) for value in fields[11:13] if value.isdigit())
    return total


class BatchSide:
    """The parts of case T, and an executor of each label for them."""

    def __init__(self, cluster, rest, s3, token_file: Path, workdir: Path, python: str):
        self.cluster, self.rest, self.s3 = cluster, rest, s3
        self.token_file, self.workdir, self.python = token_file, workdir, python
        self.bucket = s3.new_bucket("bench-tasks-")

    def make(self, label: str, log_path: Path):
        folder = Path(tempfile.mkdtemp(dir=self.workdir, prefix=f"{label}-"))
        if label == "slurm_timing":
            return SlurmTimingExecutor(
                python_path=self.python,
                remote_workdir=str(folder),
                slurm_conf=str(self.cluster.conf),
                timing_filepath=log_path,
            )
        return BatchTimingExecutor(
            rest_url=self.rest.url,
            rest_user=self.rest.user,
            token_file=str(self.token_file),
            bucket=self.bucket,
            s3_endpoint_url=self.s3.endpoint_url,
            s3_region=self.s3.region,
            aws_profile=PROFILE,
            python_path=self.python,
            env={"TMPDIR": str(folder)},
            timing_filepath=log_path,
        )


def on_batch(side: BatchSide, repetitions: int, workdir: Path, trivial: int, sleepers: int):
    out = cases.CaseResult()
    proxy_log = side.s3.folder / "proxy.log"
    for rep in range(repetitions):
        timings = Timings(out, "T", rep)
        for variant in VARIANTS:
            log = workdir / f"T-{variant}-{rep}.log"
            executor = side.make(variant, log)
            start = proxy_log.stat().st_size
            what = f"{trivial} trivial tasks"
            timings.dispatch(what, variant, tasks.trivial_workflow(executor, trivial), trivial)
            if variant == "batch_timing":
                moved = object_store_bytes(proxy_log, start) / trivial
                metric = "bytes through the object store per trivial task"
                out.add("T", variant, metric, moved, rep)
            workflow = tasks.sleep_workflow(executor, sleepers, 1.0)
            timings.dispatch(f"{sleepers} x sleep(1)", variant, workflow, sleepers)
            barrier = tempfile.mkdtemp(dir=workdir, prefix=f"T-{variant}-{rep}-barrier-")
            cpu = tasks.cpu_workflow(executor, 2, 0.5, barrier, 120)
            result = timings.dispatch("2 CPU-bound tasks at a barrier", variant, cpu, 2)
            outputs = tasks.electron_outputs(result, "burn")
            recorded = measures.recorded_cpu_seconds(log.read_text(), result.dispatch_id)
            ratios = [recorded[node] / truth for node, (truth, *_) in outputs.items()]
            out.add("T", variant, "recorded / true, worst task", max(ratios), rep)
        timings.ratios("slurm_timing")
    for variant in VARIANTS:  # once: each run costs the server seconds of pickling
        executor = side.make(variant, workdir / f"T-big-{variant}.log")
        result = Timings(out, "T", 0).dispatch(
            "a 50 MB result", variant, one_task(executor, returns_50_mb)
        )
        assert len(result.result) == RESULT_BYTES
    left = side.s3.keys(side.bucket)
    out.add("T", "batch_timing", "objects left in the bucket at the end", len(left), 0)
    return out


def batch_case(
    root: Path,
    port: int,
    extra_env: dict,
    repetitions: int,
    workdir: Path,
    trivial: int = 20,
    sleepers: int = 20,
) -> cases.CaseResult:
    """Case T with everything it needs: a Covalent-only Python, a Slurm cluster with
    its REST API, an S3 store and a server whose AWS profile holds the store's keys."""
    python = covalent_only(workdir)
    folder = workdir / "T-slurm"
    extra = rest_config(folder)
    with (
        running_slurm_cluster(folder, extra_config=extra) as cluster,
        running_slurm_rest(cluster) as rest,
        running_s3_server(workdir / "T-s3") as s3,
    ):
        home = root / "server-T"
        (home / ".aws").mkdir(parents=True, exist_ok=True)
        (home / ".aws" / "credentials").write_text(
            f"[{PROFILE}]\naws_access_key_id = {s3.access_key}\n"
            f"aws_secret_access_key = {s3.secret_key}\n"
        )
        token_file = workdir / "T-token"
        token_file.write_text(rest.token)
        with running_server(home, port, extra_env=extra_env):
            cases.warm_up()
            side = BatchSide(cluster, rest, s3, token_file, workdir, python)
            return on_batch(side, repetitions, workdir, trivial, sleepers)
