"""The conformance suite (``covalent_plugin_testing.conformance``) against this
package's six executors and Covalent's own ``local``, on the kit's server (and its
sshd and Slurm; a Dask cluster of its own). The guide's small in-thread plugin runs
it in the how-to's example project (tests/test_check_your_plugin.py): this
session's server does not load the guide's plugin folder.

Each class's ``known_gaps`` were measured here: a gap that closes fails the run."""

import tempfile
from pathlib import Path

import pytest

from covalent_plugin_testing.conformance import ExecutorConformance
from covalent_plugin_testing.dask_cluster import running_dask_cluster
from tests.batch_parts import options_for

pytestmark = pytest.mark.server


class TestTiming(ExecutorConformance):
    @pytest.fixture
    def executor(self):
        return "timing"


class TestAsyncTiming(ExecutorConformance):
    @pytest.fixture
    def executor(self):
        return "async_timing"


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory, covalent_only):
    """A scheduler and 2 workers x 2 threads, run by a Python without this package."""
    with running_dask_cluster(tmp_path_factory.mktemp("cluster"), python=covalent_only) as cluster:
        yield cluster


#: What DaskTimingExecutor lacks, as measured with this suite.
DASK_GAPS = {
    "test_output_of_a_subprocess_reaches_the_node": (
        "the worker captures Python's sys.stdout and sys.stderr only: a "
        "subprocess's output goes to the worker's log"
    ),
    "test_output_of_c_code_reaches_the_node": (
        "the worker captures Python's sys.stdout and sys.stderr only: file "
        "descriptors 1 and 2 are the worker's"
    ),
    "test_a_child_in_a_new_session_does_not_outlive_its_node": (
        "the worker lives on after the task, and so does the child"
    ),
    "test_cancel_stops_a_running_task": (
        "cancel stops waiting for the task, not the worker's thread that runs it"
    ),
    "test_os_exit_fails_only_its_node": (
        "the exit kills the worker; the node says KilledWorker (the task ran 4 "
        "times, on restarted workers), not the exit code"
    ),
    "test_a_segfault_fails_only_its_node": (
        "the crash kills the worker; the node says KilledWorker (the task ran 4 "
        "times, on restarted workers), not the signal"
    ),
}


class TestDaskTiming(ExecutorConformance):
    """Tasks run in the threads of long-lived Dask workers: see the guide's Dask page."""

    known_gaps = DASK_GAPS

    @pytest.fixture
    def executor(self, dask_cluster, tmp_path):
        from covalent.executor import DaskTimingExecutor

        return DaskTimingExecutor(dask_cluster.address, tmp_path / "records.jsonl")


class TestSSHTiming(ExecutorConformance):
    @pytest.fixture
    def executor(self, ssh_server, ssh_login, tmp_path):
        from covalent.executor import SSHTimingExecutor

        workdir = tempfile.mkdtemp(dir=ssh_server.home, prefix="work dir ")  # a space too
        return SSHTimingExecutor(
            **ssh_login,
            python_path=ssh_server.python,
            remote_workdir=workdir,
            timing_filepath=tmp_path / "records.jsonl",
        )


class TestSlurmTiming(ExecutorConformance):
    timeout = 300.0  # 50 jobs on a node of 2 CPUs, each starting a Python

    @pytest.fixture
    def executor(self, slurm_cluster, covalent_only, tmp_path):
        from covalent.executor import SlurmTimingExecutor

        return SlurmTimingExecutor(
            python_path=covalent_only,
            remote_workdir=str(Path(tempfile.mkdtemp(dir=tmp_path, prefix="work dir "))),
            slurm_conf=str(slurm_cluster.conf),
            poll_freq=0.5,
            timing_filepath=tmp_path / "records.jsonl",
        )


class TestBatchTiming(ExecutorConformance):
    timeout = 300.0  # 50 jobs on a node of 2 CPUs, each starting a Python

    @pytest.fixture
    def executor(
        self, slurm_rest, s3_server, s3_bucket, server_credentials, token_file, covalent_only,
        tmp_path,
    ):  # fmt: skip
        from covalent.executor import BatchTimingExecutor

        options = options_for(
            slurm_rest, s3_server, s3_bucket, token_file, covalent_only, tmp_path
        )
        return BatchTimingExecutor(**options, timing_filepath=tmp_path / "records.jsonl")


#: What Covalent 0.240.0's ``local`` lacks, as measured with this suite.
LOCAL_GAPS = {
    "test_output_of_a_subprocess_reaches_the_node": (
        "local redirects Python's sys.stdout and sys.stderr only: a subprocess's "
        "output goes to the server's log, the node's stdout is empty"
    ),
    "test_output_of_c_code_reaches_the_node": (
        "local redirects Python's sys.stdout and sys.stderr only: what C code or "
        "os.write writes to file descriptors 1 and 2 goes to the server's log"
    ),
    "test_output_stays_out_of_the_server_log": (
        "the output of subprocesses and C code lands in the server's log"
    ),
    "test_output_that_is_not_utf8_costs_no_result": (
        "local stores the bytes as they are and ct.get_result raises UnicodeDecodeError"
    ),
    "test_a_child_in_a_new_session_does_not_outlive_its_node": (
        "local's pool workers live on after the task, and so does the child"
    ),
    "test_cancel_stops_a_running_task": (
        "local's cancel does not stop a task already running in its pool: it runs on"
    ),
    "test_sys_exit_fails_only_its_node": (
        "the node FAILS with an empty stderr and error: nothing says the task exited"
    ),
    "test_os_exit_fails_only_its_node": (
        "the task's exit breaks local's process pool for good: every later local "
        "task fails (BrokenProcessPool) until the server restarts"
    ),
    "test_a_segfault_fails_only_its_node": (
        "the crash breaks local's process pool for good: every later local task "
        "fails until the server restarts"
    ),
}


class TestLocal(ExecutorConformance):
    """Covalent's own executor, as the reference."""

    known_gaps = LOCAL_GAPS

    @pytest.fixture
    def executor(self):
        return "local"
