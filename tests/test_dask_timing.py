"""DaskTimingExecutor against a real Dask scheduler and two workers (2 threads each),
started from a venv with Covalent but without this package, and a real Covalent
server: accuracy, one task per electron call, killed workers, errors, cancellation,
output. And by short name on the cluster that ``covalent start`` starts."""

import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import covalent as ct
import distributed
import pytest
import toml

from benchmarks.tasks import cpu_workflow
from covalent_plugin_testing.dask_cluster import running_dask_cluster
from covalent_plugin_testing.server import free_port, run_client, running_server
from tests.covalent_only_venv import OTHER_CLOUDPICKLE, other_cloudpickle
from tests.waiting import held_workflow, wait_for_pids, wait_until
from tests.workflows import (
    add_multiply_workflow,
    dispatch_and_wait,
    failing_workflow,
    node_ids_by_name,
    sleeping_workflow,
)
from timing_executor.dask_timing import DaskTimingExecutor

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory, covalent_only):
    """A scheduler and 2 workers x 2 threads, run by a Python without this package."""
    folder = tmp_path_factory.mktemp("cluster")
    with running_dask_cluster(folder, python=covalent_only) as cluster:
        yield cluster


@pytest.fixture
def executor(dask_cluster, tmp_path):
    return DaskTimingExecutor(
        dask_cluster.address, tmp_path / "records.jsonl", record_format="jsonl"
    )


def records(executor, dispatch_id: str) -> list[dict]:
    lines = Path(executor.timing_filepath).read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["dispatch_id"] == dispatch_id]


def test_cpu_time_is_each_tasks_own_and_the_worker_is_recorded(
    covalent_server, dask_cluster, executor, tmp_path
):
    """4 CPU-bound tasks that meet at a barrier, on 2 workers of 2 threads."""
    barrier = tempfile.mkdtemp(dir=tmp_path)
    result = dispatch_and_wait(cpu_workflow(executor, 4, 0.5, barrier), 4)
    assert str(result.status) == "COMPLETED", result.error
    truths = {node: output[0] for node, output in enumerate_outputs(result, "burn").items()}
    met = [output[3] for output in enumerate_outputs(result, "burn").values()]
    assert met == [True] * 4
    runs = {record["node_id"]: record for record in records(executor, result.dispatch_id)}
    for node, truth in truths.items():
        assert runs[node]["cpu_seconds"] / truth == pytest.approx(1.0, abs=0.03)
        assert runs[node]["worker"] in dask_cluster.worker_addresses()
        assert runs[node]["host"] == os.uname().nodename


def enumerate_outputs(result, name):
    graph = result.lattice.transport_graph
    return {
        node: graph.get_node_value(node, "output").get_deserialized()
        for node in graph._graph.nodes
        if graph.get_node_value(node, "name") == name
    }


def test_equal_electron_calls_run_as_tasks_of_their_own(covalent_server, executor, tmp_path):
    """Each run of the task writes a line where it runs: four calls, four runs (the
    records and results alone are four even when Dask runs one task for the four)."""
    runs = tmp_path / "runs"

    @ct.electron(executor=executor)
    def process_id(x):
        import os
        import time

        with open(runs, "a") as file:
            file.write(f"run in {os.getpid()}\n")
        time.sleep(0.5)
        return os.getpid(), x

    @ct.lattice
    def workflow():
        return [process_id(1) for _ in range(4)]

    result = dispatch_and_wait(workflow)
    assert str(result.status) == "COMPLETED", result.error
    assert len(records(executor, result.dispatch_id)) == 4
    assert [x for _, x in result.result] == [1, 1, 1, 1]
    assert len(runs.read_text().splitlines()) == 4


def test_a_worker_killed_mid_task_gets_the_task_run_again(
    covalent_server, dask_cluster, executor, tmp_path
):
    markers = tmp_path / "markers"
    markers.mkdir()
    dispatch_id = ct.dispatch(sleeping_workflow(executor, str(markers), 1, seconds=3))()
    (worker_pid,) = wait_for_pids(markers, 1)
    os.kill(worker_pid, signal.SIGKILL)  # the worker process itself
    result = ct.get_result(dispatch_id, wait=True)
    assert str(result.status) == "COMPLETED", result.error
    nap = node_ids_by_name(result)["nap"]
    assert [r["node_id"] for r in records(executor, dispatch_id) if r["node_id"] == nap] == [nap]


def test_a_raising_task_fails_with_its_traceback_and_a_failure_record(covalent_server, executor):
    result = dispatch_and_wait(failing_workflow(executor), 7)
    assert str(result.status) == "FAILED"
    node = result.get_node_result(node_ids_by_name(result)["check"])
    assert node["stderr"].startswith("Traceback (most recent call last):")
    assert node["stderr"].endswith("ValueError: bad input: 7\n")
    (record,) = records(executor, result.dispatch_id)
    assert (record["status"], record["error"]) == ("FAILED", "ValueError: bad input: 7")


def test_cancel_cancels_the_task_on_the_cluster_and_records_it(
    covalent_server, executor, tmp_path
):
    """The node and its record say CANCELLED at once; the worker thread, which Dask
    cannot stop, runs the task to its end (what the how-to page says). The task
    holds until the test releases it (at most 60 s), so the cancel always finds it
    running, however slow the machine."""
    started, release, ended = tmp_path / "started", tmp_path / "release", tmp_path / "ended"
    workflow = held_workflow(executor, tmp_path)
    dispatch_id = ct.dispatch(workflow)()
    wait_until(started.exists, limit=60)
    assert started.exists(), "the task did not start within 60 s"
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    assert str(result.status) == "CANCELLED"
    assert str(result.get_node_result(node_ids_by_name(result)["held"])["status"]) == "CANCELLED"
    (record,) = records(executor, dispatch_id)
    assert record["status"] == "CANCELLED" and record["wall_seconds"] < 60
    assert not ended.exists()
    release.touch()
    wait_until(ended.exists, limit=30)
    assert ended.exists(), "the cancelled task's thread did not run on"


def test_what_a_task_prints_is_in_its_nodes_result(covalent_server, executor):
    """Text the task's thread writes to sys.stdout and sys.stderr; bytes written to
    their ``buffer``, a subprocess's and C code's output go to the worker's own output."""

    @ct.electron(executor=executor)
    def greet(name):
        import ctypes
        import subprocess

        print(f"Hello, {name}!")
        print("on stderr", file=sys.stderr)
        sys.stdout.buffer.write(b"bytes, not UTF-8: \xff\n")
        subprocess.run(["echo", "from a subprocess"], check=True)
        ctypes.CDLL(None).puts(b"from C")
        return len(name)

    @ct.lattice
    def workflow():
        return greet("Ada")

    result = dispatch_and_wait(workflow)
    node = result.get_node_result(node_ids_by_name(result)["greet"])
    assert (node["stdout"], node["stderr"]) == ("Hello, Ada!\n", "on stderr\n")
    assert result.result == 3


BY_SHORT_NAME = """
import covalent as ct
from tests.workflows import add_multiply_workflow, dispatch_and_wait
result = dispatch_and_wait(add_multiply_workflow("dask_timing"), 1, 2)
print(result.status, result.result, result.dispatch_id, ct.get_config("dask.scheduler_address"))
"""


def test_short_name_uses_the_cluster_covalent_start_starts(tmp_path):
    home = tmp_path / "home"
    with running_server(home, cluster=True) as server:
        done = run_client(server, BY_SHORT_NAME)
    assert done.returncode == 0, done.stderr
    status, result, dispatch_id, address = done.stdout.split()
    assert (status, result) == ("COMPLETED", "6") and address.startswith("tcp://")
    recorded = (home / ".cache" / "covalent" / "timing.log").read_text()
    pattern = rf"Node \d+ in dispatch {dispatch_id} took \d+\.\d{{6}}s of CPU time\."
    assert len(re.findall(pattern, recorded)) == 2


def test_add_multiply_by_instance(covalent_server, executor):
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert result.result == 6
    assert {r["status"] for r in records(executor, result.dispatch_id)} == {"COMPLETED"}


CONFIGURED = """
import json
from tests.workflows import add_multiply_workflow, dispatch_and_wait
result = dispatch_and_wait(add_multiply_workflow("dask_timing"), 1, 2)
print(json.dumps([str(result.status), result.result, result.dispatch_id]))
"""


def test_short_name_uses_the_executor_section_of_covalent_conf(dask_cluster, tmp_path):
    home, records_file = tmp_path / "home", tmp_path / "records.jsonl"
    config_file = home / ".config" / "covalent" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    section = {"scheduler_address": dask_cluster.address, "record_format": "jsonl"}
    section["timing_filepath"] = str(records_file)
    config_file.write_text(toml.dumps({"executors": {"dask_timing": section}}))
    with running_server(home) as server:
        done = run_client(server, CONFIGURED)
    assert done.returncode == 0, done.stderr
    status, result, dispatch_id = json.loads(done.stdout)
    assert (status, result) == ("COMPLETED", 6)
    lines = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert [line["dispatch_id"] for line in lines] == [dispatch_id] * 2
    workers = set(dask_cluster.worker_addresses())
    assert {line["worker"] for line in lines} <= workers


def test_without_a_scheduler_address_run_says_how_to_give_one():
    # The tests' covalent.conf names no cluster: its server runs with --no-cluster.
    executor = DaskTimingExecutor(timing_filepath="/dev/null")
    metadata = {"dispatch_id": "d", "node_id": 0}
    with pytest.raises(ValueError, match=r"no scheduler address: pass scheduler_address="):
        asyncio.run(executor.run(len, [[]], {}, metadata))


@pytest.mark.parametrize("option", [{"workdir": "/data"}, {"create_unique_workdir": True}])
def test_a_working_folder_is_refused_with_the_reason(option):
    with pytest.raises(ValueError, match="threads of one process, which share one working"):
        DaskTimingExecutor("tcp://127.0.0.1:8786", "/dev/null", **option)


def test_a_scheduler_that_does_not_answer_fails_the_task_naming_its_address(
    covalent_server, tmp_path
):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    executor = DaskTimingExecutor(address, tmp_path / "records.jsonl")
    started = time.monotonic()
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert str(result.status) == "FAILED"
    assert time.monotonic() - started < 60  # the executor waits 10 s, not forever
    error = result.get_node_result(node_ids_by_name(result)["add"])["error"]
    assert f"No Dask scheduler answers at {address}" in error
    assert "covalent start --no-cluster" in error


def scheduler_clients(address: str) -> int:
    """How many clients the scheduler at ``address`` knows, this one included."""
    with distributed.Client(address, timeout=30) as client:
        return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.clients))


def test_cancelling_a_dispatch_of_50_nodes_opens_no_client(
    covalent_server, dask_cluster, executor, tmp_path
):
    """Covalent calls cancel() for every node, on a new executor each time."""
    assert dispatch_and_wait(add_multiply_workflow(executor), 1, 2).result == 6
    before = scheduler_clients(dask_cluster.address)
    markers = tmp_path / "markers"
    markers.mkdir()
    dispatch_id = ct.dispatch(sleeping_workflow(executor, str(markers), 49, seconds=2))()
    wait_for_pids(markers, 1)
    ct.cancel(dispatch_id)
    result = ct.get_result(dispatch_id, wait=True)
    assert str(result.status) == "CANCELLED"
    assert scheduler_clients(dask_cluster.address) == before


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3, 0.6, 1.0])
def test_a_cancel_at_any_moment_cancels_the_dispatch(covalent_server, executor, delay):
    @ct.electron(executor=executor)
    def nap():
        import time

        time.sleep(3)

    @ct.lattice
    def workflow():
        return nap()

    dispatch_id = ct.dispatch(workflow)()
    time.sleep(delay)
    ct.cancel(dispatch_id)
    assert str(ct.get_result(dispatch_id, wait=True).status) == "CANCELLED"


def test_a_task_that_kills_its_worker_is_run_four_times_then_fails(
    covalent_server, dask_cluster, executor, tmp_path
):
    """distributed.scheduler.allowed-failures is 3: each run kills a worker (its nanny
    starts a new one), the fourth makes Dask give up."""
    runs = tmp_path / "runs"

    @ct.electron(executor=executor)
    def dies():
        import os

        with open(runs, "a") as file:
            file.write("run\n")
        os._exit(1)

    @ct.lattice
    def workflow():
        return dies()

    result = dispatch_and_wait(workflow)
    assert str(result.status) == "FAILED"
    assert runs.read_text() == "run\n" * 4
    node = result.get_node_result(node_ids_by_name(result)["dies"])
    assert "KilledWorker: the task's worker died while running it 4 times" in node["stderr"]
    (record,) = records(executor, result.dispatch_id)
    assert record["status"] == "FAILED" and record["error"].startswith("KilledWorker")
    with distributed.Client(dask_cluster.address, timeout=30) as client:
        client.wait_for_workers(2, timeout=120)


def test_workers_with_other_versions_fail_the_task_naming_them(
    covalent_server, tmp_path, monkeypatch
):
    """A worker whose cloudpickle is another version than the server's."""
    other = other_cloudpickle(tmp_path / "other-cloudpickle")
    monkeypatch.setenv("PYTHONPATH", str(other))
    with running_dask_cluster(tmp_path / "cluster", workers=1, nanny=False) as cluster:
        executor = DaskTimingExecutor(cluster.address, tmp_path / "records.jsonl")
        result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert str(result.status) == "FAILED"
    error = result.get_node_result(node_ids_by_name(result)["add"])["error"]
    assert "Dask workers run other versions than this Covalent server" in error
    assert f"'cloudpickle': '{OTHER_CLOUDPICKLE}'" in error
    assert "pip install covalent==0.240.0" in error


def test_the_record_leaves_out_threads_and_processes_the_task_starts(covalent_server, executor):
    """The worker thread's clock: 0.5 s burnt in another thread and 0.5 s in a
    subprocess are not the task's."""

    @ct.electron(executor=executor)
    def burns_elsewhere():
        import subprocess
        import sys
        import threading
        import time

        def burn():
            start = time.thread_time()
            while time.thread_time() - start < 0.5:
                pass

        thread = threading.Thread(target=burn)
        thread.start()
        thread.join()
        burner = (
            "import time\nstart = time.process_time()\n"
            "while time.process_time() - start < 0.5: pass"
        )
        subprocess.run([sys.executable, "-c", burner], check=True)

    @ct.lattice
    def workflow():
        return burns_elsewhere()

    result = dispatch_and_wait(workflow)
    assert str(result.status) == "COMPLETED", result.error
    (record,) = records(executor, result.dispatch_id)
    assert record["cpu_seconds"] < 0.2
