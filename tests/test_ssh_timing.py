"""SSHTimingExecutor against a real OpenSSH sshd (the kit's ``ssh_server`` fixture),
whose tasks run on a Python with Covalent but not this package, and a real Covalent
server: results, records, output and exits, CPU time, every way the connection can
fail, one connection for many tasks, cancellation, and nothing left behind."""

import itertools
import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import covalent as ct
import psutil
import pytest
import toml

from benchmarks.tasks import cpu_workflow
from covalent_plugin_testing.server import free_port, run_client, running_server
from covalent_plugin_testing.ssh_server import SSHServer, running_ssh_server
from tests.covalent_only_venv import OTHER_CLOUDPICKLE, other_cloudpickle
from tests.waiting import wait_for_pids, wait_until, wait_until_gone
from tests.workflows import (
    add_multiply_workflow,
    assert_each_burn_recorded_its_cpu_time,
    assert_inside_the_config_folder,
    assert_misbehaviour_reported,
    covalent_folders_workflow,
    dispatch_and_wait,
    error_of,
    misbehaving_workflow,
    node_ids_by_name,
    records,
    sleeping_workflow,
)
from timing_executor.ssh_timing import SSHTimingExecutor

pytestmark = pytest.mark.server


@pytest.fixture
def remote_workdir(ssh_server) -> Path:
    return Path(tempfile.mkdtemp(dir=ssh_server.home, prefix="work dir "))  # a space too


@pytest.fixture
def options(ssh_server, ssh_login, remote_workdir) -> dict:
    """What the executor needs to run tasks on the fixture's sshd."""
    return ssh_login | {"python_path": ssh_server.python, "remote_workdir": str(remote_workdir)}


@pytest.fixture
def executor(options, tmp_path):
    return SSHTimingExecutor(
        **options, timing_filepath=tmp_path / "records.jsonl", record_format="jsonl"
    )


def logins(ssh_server) -> int:
    return ssh_server.log.read_text().count("Accepted publickey")


def test_a_workflow_runs_there_and_is_recorded_here(covalent_server, executor, remote_workdir):
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == 6
    runs = records(executor, result.dispatch_id)
    assert sorted(run["node_name"] for run in runs.values()) == ["add", "multiply"]
    assert {run["status"] for run in runs.values()} == {"COMPLETED"}
    assert list(remote_workdir.iterdir()) == []


def test_tasks_run_in_the_remote_workdir_in_processes_of_their_own(
    covalent_server, executor, remote_workdir
):
    @ct.electron(executor=executor)
    def where():
        import importlib.util
        import os
        import socket

        spec = importlib.util.find_spec("timing_executor")
        return os.getcwd(), os.getpid(), spec, socket.gethostname()

    @ct.lattice
    def workflow():
        return [where() for _ in range(3)]

    result = dispatch_and_wait(workflow)
    assert str(result.status) == "COMPLETED", result.error
    folders, pids, packages, hosts = zip(*result.result, strict=True)
    assert set(folders) == {str(remote_workdir)}
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert packages == (None, None, None)  # the remote side has Covalent only
    # Each record names the machine as the task's own process there names it.
    recorded = [run["host"] for run in records(executor, result.dispatch_id).values()]
    assert sorted(recorded) == sorted(hosts) and None not in recorded


def test_cpu_time_is_measured_there_and_is_each_tasks_own(covalent_server, executor, tmp_path):
    """4 CPU-bound tasks that meet at a barrier on a 2-core machine."""
    barrier = tempfile.mkdtemp(dir=tmp_path)
    result = dispatch_and_wait(cpu_workflow(executor, 4, 0.5, barrier), 4)
    assert str(result.status) == "COMPLETED", result.error
    assert_each_burn_recorded_its_cpu_time(result, executor, 4)


def test_output_tracebacks_and_exits_reach_the_nodes_result(
    covalent_server, executor, remote_workdir
):
    result = dispatch_and_wait(misbehaving_workflow(executor))
    assert_misbehaviour_reported(result)
    runs = records(executor, result.dispatch_id)
    assert sorted(run["status"] for run in runs.values()) == ["COMPLETED"] * 2 + ["FAILED"] * 4
    assert dispatch_and_wait(add_multiply_workflow(executor), 1, 2).result == 6
    assert list(remote_workdir.iterdir()) == []


def test_covalent_keeps_what_it_makes_there_in_the_launchers_own_folder(
    covalent_server, executor, ssh_server
):
    """Covalent's configuration, logs, plugin folder, database and dispatch cache of
    the launcher are in one temporary folder (removed with the launcher), not in the
    remote user's home."""
    folders = dispatch_and_wait(covalent_folders_workflow(executor)).result
    config = assert_inside_the_config_folder(folders)
    assert config.parent == ssh_server.home / "tmp"  # the remote TMPDIR


def test_a_large_result_and_output_come_back_whole(covalent_server, executor, remote_workdir):
    @ct.electron(executor=executor)
    def large(megabytes):
        import sys

        print("é" + "x" * (megabytes << 20))
        print("e" * (megabytes << 20), file=sys.stderr)
        return bytes(4 * megabytes << 20)

    @ct.lattice
    def workflow():
        return large(5)

    result = dispatch_and_wait(workflow)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == bytes(20 << 20)
    node = result.get_node_result(0)
    assert node["stdout"] == "é" + "x" * (5 << 20) + "\n"
    assert len(node["stderr"]) == (5 << 20) + 1
    assert list(remote_workdir.iterdir()) == []


def other_host_key(tmp_path: Path, ssh_server) -> str:
    """A known_hosts file that holds another key for the fixture's host."""
    key = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    kind, text = key.with_suffix(".pub").read_text().split()[:2]
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[{ssh_server.host}]:{ssh_server.port} {kind} {text}\n")
    return str(changed)


def other_client_key(tmp_path: Path, name: str, passphrase: str = "") -> str:
    key = tmp_path / name
    command = ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", key]
    subprocess.run(command, check=True)
    return str(key)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port where connections are accepted (by the kernel) and never answered."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("unknown host key", "is not the one"),
        ("changed host key", "is not the one"),
        ("refused connection", "refused the connection: no SSH server listens"),
        ("silent host", "did not let us log in within 2 s. Check that 127.0.0.1 is up"),
        ("refused login", "was refused. Add the public key"),
        ("key with a passphrase", "cannot be read (Passphrase must be specified"),
        ("public key file", "Name the private key, not its .pub file"),
        ("missing Python", "the remote Python '/nowhere/python3' was not found"),
    ],
)
def test_each_connection_problem_fails_the_node_within_seconds_naming_it(
    covalent_server, ssh_server, options, tmp_path, silent_port, problem, message
):
    changes = {
        "unknown host key": {"known_hosts": str(tmp_path / "empty_known_hosts")},
        "changed host key": {"known_hosts": other_host_key(tmp_path, ssh_server)},
        "refused connection": {"port": free_port()},
        "silent host": {"port": silent_port, "connect_timeout": 2},
        "refused login": {"ssh_key_file": other_client_key(tmp_path, "stranger")},
        "key with a passphrase": {
            "ssh_key_file": other_client_key(tmp_path, "locked", passphrase="secret")
        },
        "public key file": {"ssh_key_file": other_client_key(tmp_path, "public") + ".pub"},
        "missing Python": {"python_path": "/nowhere/python3"},
    }[problem]
    (tmp_path / "empty_known_hosts").touch()
    executor = SSHTimingExecutor(**(options | changes), timing_filepath=tmp_path / "r.jsonl")
    started = time.monotonic()
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert time.monotonic() - started < 30
    assert str(result.status) == "FAILED"
    error = error_of(result, "add")
    port = changes.get("port", ssh_server.port)
    assert f"127.0.0.1:{port}" in error and message in error
    if "host key" in problem:
        assert f"ssh-keyscan -p {port} 127.0.0.1 >> " in error
    recorded = Path(executor.timing_filepath).read_text()
    assert "failed (LoginFailed)" in recorded or "failed (RuntimeError)" in recorded


def test_a_remote_python_with_other_versions_fails_the_node_naming_them(
    covalent_server, options, tmp_path
):
    other = other_cloudpickle(tmp_path / "other-cloudpickle")
    executor = SSHTimingExecutor(**options, env={"PYTHONPATH": str(other)})
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert str(result.status) == "FAILED"
    error = error_of(result, "add")
    assert "runs other versions than this server" in error
    assert (
        f'"cloudpickle": "{OTHER_CLOUDPICKLE}"' in error
        and "pip install covalent==0.240.0" in error
    )


def test_a_dropped_connection_fails_the_running_task_and_the_next_one_reconnects(
    covalent_server, ssh_server, executor, tmp_path, remote_workdir
):
    markers = tmp_path / "markers"
    markers.mkdir()
    dispatch_id = ct.dispatch(sleeping_workflow(executor, str(markers), seconds=60))()
    (task_pid,) = wait_for_pids(markers, 1)
    for session in ssh_server.session_pids():
        ssh_server.kill_session(session)
    dropped_at = time.monotonic()
    result = ct.get_result(dispatch_id, wait=True)
    assert time.monotonic() - dropped_at < 20
    assert str(result.status) == "FAILED"
    assert f"the connection to 127.0.0.1:{ssh_server.port} was lost" in error_of(result, "nap")
    wait_until_gone([task_pid], limit=5)  # the launcher saw its channel close
    # ... and every launcher ended, removing the folder Covalent kept its settings in.
    deadline = time.monotonic() + 10
    while list((ssh_server.home / "tmp").glob("tmp.*")):
        assert time.monotonic() < deadline, "a launcher's Covalent settings were left"
        time.sleep(0.05)
    assert dispatch_and_wait(add_multiply_workflow(executor), 1, 2).result == 6
    assert list(remote_workdir.iterdir()) == []


def launcher_of(task_pid: int) -> list[psutil.Process]:
    """The remote processes that serve a task: its own, its supervisor, the launcher
    and the launcher's shell (each the parent of the one before), up to sshd."""
    task = psutil.Process(task_pid)
    return [task, *itertools.takewhile(lambda p: p.name() != "sshd", task.parents())]


def nap_there(executor: SSHTimingExecutor, markers: Path) -> tuple[str, list[psutil.Process]]:
    """Dispatch a nap of 600 s; once it naps, return the dispatch and the remote
    processes that serve it (:func:`launcher_of`)."""
    markers.mkdir()
    dispatch_id = ct.dispatch(sleeping_workflow(executor, str(markers), seconds=600))()
    (task_pid,) = wait_for_pids(markers, 1)
    return dispatch_id, launcher_of(task_pid)


def stop_this_server_while_a_task_naps(
    executor: SSHTimingExecutor, sshd: SSHServer, markers: Path
) -> tuple[str, float, list[int]]:
    """Dispatch a nap, then stop (SIGSTOP) the Covalent server, which holds the
    connection to ``sshd``: the connection stays open and says nothing, as when the
    path dies silently. Return the dispatch, how long the nap's processes lived
    then, and sshd's sessions just before the server went on (SIGCONT)."""
    dispatch_id, processes = nap_there(executor, markers)
    config_folder = Path(processes[2].environ()["COVALENT_CONFIG_DIR"])
    assert config_folder.is_dir() and list(Path(executor.remote_workdir).iterdir())
    with sshd.clients_stopped() as stopped:
        assert stopped  # the server, and the processes forked from it
        lived = wait_until_gone([p.pid for p in processes], limit=60)
        wait_until(lambda: not config_folder.exists(), limit=10)
        assert not config_folder.exists(), "the launcher's Covalent settings were left"
        assert list(Path(executor.remote_workdir).iterdir()) == []
        sessions = sshd.session_pids()
    return dispatch_id, lived, sessions


def wait_for_the_end(dispatch_id: str):
    """The dispatch's result once it has ended (within 60 s)."""
    wait_until(lambda: str(ct.get_result(dispatch_id).status) != "RUNNING", limit=60)
    return ct.get_result(dispatch_id)


def test_a_task_longer_than_heartbeat_timeout_runs_to_its_end(covalent_server, options):
    executor = SSHTimingExecutor(**options, heartbeat_timeout=10, timing_filepath="/dev/null")

    @ct.electron(executor=executor)
    def nap(seconds):
        import time

        time.sleep(seconds)
        return "awake"

    @ct.lattice
    def workflow():
        return nap(15)

    assert dispatch_and_wait(workflow).result == "awake"


def test_a_silent_connection_stops_the_remote_tasks_after_heartbeat_timeout(
    covalent_server, ssh_server, options, tmp_path
):
    """sshd does not check that clients answer (ClientAliveInterval 0, its default):
    the launcher's own check ends the tasks."""
    records_file = tmp_path / "records.jsonl"
    executor = SSHTimingExecutor(
        **options, heartbeat_timeout=10, timing_filepath=records_file, record_format="jsonl"
    )
    dispatch_id, lived, sessions = stop_this_server_while_a_task_naps(
        executor, ssh_server, tmp_path / "markers"
    )
    print(f"the nap's processes were gone {lived:.1f} s after the server was stopped")
    assert lived < 40  # 10 s, then the launcher's time to end them on a busy machine
    assert sessions  # sshd noticed nothing: its session waited for the client
    result = wait_for_the_end(dispatch_id)
    assert str(result.status) == "FAILED"
    error = error_of(result, "nap")
    assert (
        f"the task launcher on 127.0.0.1:{ssh_server.port} heard nothing from this server "
        "for 10 s (heartbeat_timeout), so it stopped its tasks and ended" in error
    )
    assert [run["status"] for run in records(executor, dispatch_id).values()] == ["FAILED"]
    assert dispatch_and_wait(add_multiply_workflow(executor), 1, 2).result == 6


def test_a_silent_remote_side_fails_the_node_within_seconds_and_its_launcher_ends(
    covalent_server, ssh_server, options, tmp_path
):
    """sshd's processes of the connection stopped: to the server, the path died."""
    executor = SSHTimingExecutor(**options, heartbeat_timeout=10, timing_filepath="/dev/null")
    dispatch_id, processes = nap_there(executor, tmp_path / "markers")
    with ssh_server.sessions_stopped() as stopped:
        silent_at = time.monotonic()
        assert stopped
        result = wait_for_the_end(dispatch_id)
        failed_after = time.monotonic() - silent_at
        print(f"the node failed {failed_after:.1f} s after the remote side went silent")
        assert failed_after < 45  # 3 keepalives of 5 s unanswered, on a busy machine
        # The launcher heard nothing either. (Its shell stays a zombie: its parent,
        # sshd, is stopped.)
        wait_until_gone([p.pid for p in processes[:3]], limit=40)
    assert str(result.status) == "FAILED"
    lost = f"the connection to 127.0.0.1:{ssh_server.port} was lost while the task ran"
    assert lost in error_of(result, "nap")
    assert dispatch_and_wait(add_multiply_workflow(executor), 1, 2).result == 6


def test_with_client_alive_interval_sshd_ends_a_silent_connection_and_its_tasks(
    covalent_server, covalent_only, tmp_path
):
    settings = {"ClientAliveInterval": 1, "ClientAliveCountMax": 3}
    with running_ssh_server(tmp_path / "sshd", covalent_only, extra_config=settings) as sshd:
        workdir = sshd.home / "work"
        executor = SSHTimingExecutor(
            hostname=sshd.host,
            port=sshd.port,
            username=sshd.username,
            ssh_key_file=sshd.key_file,
            known_hosts=sshd.known_hosts,
            python_path=sshd.python,
            remote_workdir=str(workdir),
            timing_filepath=tmp_path / "records.log",
        )
        dispatch_id, lived, sessions = stop_this_server_while_a_task_naps(
            executor, sshd, tmp_path / "markers"
        )
        print(f"the nap's processes were gone {lived:.1f} s after the server was stopped")
        assert lived < 30  # about 8 s, well before heartbeat_timeout (60 s)
        assert sessions == []  # sshd ended the connection
        assert "Timeout, client not responding" in sshd.log.read_text()
        result = wait_for_the_end(dispatch_id)
    assert str(result.status) == "FAILED"
    lost = f"the connection to 127.0.0.1:{sshd.port} was lost while the task ran"
    assert lost in error_of(result, "nap")


def test_a_hundred_tasks_at_once_share_one_connection(covalent_server, ssh_server, executor):
    @ct.electron(executor=executor)
    def square(x):
        return x * x

    @ct.lattice
    def workflow():
        return [square(x) for x in range(100)]

    before = logins(ssh_server)
    result = dispatch_and_wait(workflow)
    assert str(result.status) == "COMPLETED", result.error
    assert result.result == [x * x for x in range(100)]
    assert logins(ssh_server) - before <= 2
    assert len(records(executor, result.dispatch_id)) == 100


def test_cancel_stops_the_remote_task_and_what_it_started_within_seconds(
    covalent_server, executor, tmp_path, remote_workdir
):
    markers = tmp_path / "markers"
    markers.mkdir()

    @ct.electron(executor=executor)
    def nap_with_a_daemon():
        import os
        import subprocess
        import time

        daemon = subprocess.Popen(["sleep", "120"], start_new_session=True)
        (markers / "task").write_text(str(os.getpid()))
        (markers / "daemon").write_text(str(daemon.pid))
        time.sleep(120)

    @ct.lattice
    def workflow():
        return nap_with_a_daemon()

    dispatch_id = ct.dispatch(workflow)()
    pids = wait_for_pids(markers, 2)
    asked = time.monotonic()
    ct.cancel(dispatch_id)  # an HTTP request to the server, which then cancels
    wait_until_gone(pids, limit=15)
    print(f"gone {time.monotonic() - asked:.2f} s after ct.cancel was called")
    result = ct.get_result(dispatch_id, wait=True)
    assert str(result.status) == "CANCELLED"
    node = node_ids_by_name(result)["nap_with_a_daemon"]
    assert str(result.get_node_result(node)["status"]) == "CANCELLED"
    assert records(executor, dispatch_id)[node]["status"] == "CANCELLED"
    deadline = time.monotonic() + 5
    while list(remote_workdir.iterdir()):
        assert time.monotonic() < deadline, "the task's folder was left"
        time.sleep(0.05)


BY_SHORT_NAME = """
import json
from tests.workflows import add_multiply_workflow, dispatch_and_wait
result = dispatch_and_wait(add_multiply_workflow("ssh_timing"), 1, 2)
print(json.dumps([str(result.status), result.result, result.dispatch_id]))
"""


def test_every_argument_works_from_the_executor_section_of_covalent_conf(options, tmp_path):
    home, records_file = tmp_path / "home", tmp_path / "records.jsonl"
    config_file = home / ".config" / "covalent" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    section = options | {"timing_filepath": str(records_file), "record_format": "jsonl"}
    section |= {"env": {"GREETING": "hello"}, "prerun_command": "export MOOD=fine"}
    section |= {"connect_timeout": 20, "heartbeat_timeout": 30}
    config_file.write_text(toml.dumps({"executors": {"ssh_timing": section}}))
    with running_server(home) as server:
        done = run_client(server, BY_SHORT_NAME)
        environment = run_client(
            server,
            "import covalent as ct\n"
            "@ct.electron(executor='ssh_timing')\n"
            "def env():\n"
            "    import os\n"
            "    return os.environ['GREETING'], os.environ['MOOD']\n"
            "@ct.lattice\n"
            "def workflow():\n"
            "    return env()\n"
            "print(*ct.get_result(ct.dispatch(workflow)(), wait=True).result)\n",
        )
    assert done.returncode == 0, done.stderr
    status, result, dispatch_id = json.loads(done.stdout)
    assert (status, result) == ("COMPLETED", 6)
    lines = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert [line["dispatch_id"] for line in lines][:2] == [dispatch_id] * 2
    assert environment.stdout.split() == ["hello", "fine"], environment.stderr


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ({"port": 0}, "port 0 is not a TCP port"),
        ({"env": {"A-B": "1"}}, "'A-B' is not"),
        ({"heartbeat_timeout": 5}, "heartbeat_timeout 5 is too short: give at least 10 s"),
        ({"heartbeat_timeout": "60"}, "heartbeat_timeout '60' is not a number of seconds"),
    ],
)
def test_values_that_cannot_work_are_refused_at_once(argument, message):
    with pytest.raises(ValueError, match=message):
        SSHTimingExecutor("example.org", timing_filepath="/dev/null", **argument)
