"""covalent_plugin_testing.ssh_server against the real OpenSSH server: logins with the
client key only, the host key checked, SFTP, dropped connections, extra settings, and
nothing left running after the block."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import asyncssh
import psutil
import pytest

from covalent_plugin_testing import ssh_server as ssh_module
from covalent_plugin_testing.ssh_server import SSHServer, running_ssh_server
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    with running_ssh_server(tmp_path_factory.mktemp("sshd")) as running:
        yield running


async def run(server: SSHServer, command: str, **options) -> asyncssh.SSHCompletedProcess:
    async with asyncssh.connect(**(server.asyncssh_options() | options)) as connection:
        return await connection.run(command, check=True)


def processes_of(folder: Path, port: int) -> list[psutil.Process]:
    """The sshd processes started with a config file in ``folder``, and the processes
    started in sessions to ``port``."""
    found = []
    for process in psutil.process_iter():
        try:
            in_folder = str(folder) in " ".join(process.cmdline())
            connection = process.environ().get("SSH_CONNECTION", "").split()
        except psutil.Error:
            continue
        if in_folder or connection[2:] == ["127.0.0.1", str(port)]:
            found.append(process)
    return found


def sleeps_of(folder: Path, port: int) -> list[psutil.Process]:
    """The ``sleep`` commands among :func:`processes_of` ``(folder, port)``."""
    found = []
    for process in processes_of(folder, port):
        with suppress(psutil.Error):
            if process.name() == "sleep":
                found.append(process)
    return found


def test_login_runs_a_command_with_the_python_given(server: SSHServer) -> None:
    result = asyncio.run(run(server, f"{server.python} -c 'import os; print(os.getuid())'"))
    assert result.stdout == f"{psutil.Process().uids().real}\n"
    assert Path(server.known_hosts).read_text().startswith(f"[127.0.0.1]:{server.port} ")


def test_the_ssh_client_logs_in_too(server: SSHServer) -> None:
    result = subprocess.run(
        server.ssh_command("echo", "hello"), capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, "hello\n"), result.stderr


def test_another_host_key_is_not_verifiable(server: SSHServer, tmp_path: Path) -> None:
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {other_key}")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(run(server, "true", known_hosts=str(known_hosts)))


def test_another_client_key_is_refused(server: SSHServer) -> None:
    other_key = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(run(server, "true", client_keys=[other_key]))


def test_sftp_copies_files_both_ways(server: SSHServer, tmp_path: Path) -> None:
    local = tmp_path / "local.txt"
    local.write_text("to the server")

    async def copy() -> None:
        async with (
            asyncssh.connect(**server.asyncssh_options()) as connection,
            connection.start_sftp_client() as sftp,
        ):
            await sftp.put(str(local), str(tmp_path / "remote.txt"))
            await sftp.get(str(tmp_path / "remote.txt"), str(tmp_path / "back.txt"))

    asyncio.run(copy())
    assert (tmp_path / "back.txt").read_text() == "to the server"


def test_a_killed_session_drops_its_connection_and_its_command_sees_eof(
    server: SSHServer, tmp_path: Path
) -> None:
    marker = tmp_path / "stdin-closed"
    code = f"import sys, pathlib; sys.stdin.read(); pathlib.Path({str(marker)!r}).touch()"

    async def drop() -> asyncssh.SSHCompletedProcess:
        async with asyncssh.connect(**server.asyncssh_options()) as connection:
            process = await connection.create_process(f'{server.python} -c "{code}"')
            deadline = time.monotonic() + 30
            while len(server.session_pids()) != 1 or not processes_of(tmp_path, server.port):
                assert time.monotonic() < deadline, "the command did not start"
                await asyncio.sleep(0.05)
            server.kill_session(server.session_pids()[0])
            return await asyncio.wait_for(process.wait(), 30)

    result = asyncio.run(drop())
    assert result.exit_status is None  # the connection ended without one
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the command did not get end-of-file on stdin"
        time.sleep(0.05)


CLIENT_THAT_FORKS = """
import os, socket, sys, time
connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
connection.recv(100)  # sshd's greeting
if os.fork() == 0:
    print(os.getpid(), flush=True)
time.sleep(120)
"""


def test_clients_stopped_stops_every_process_that_holds_a_connection_until_the_block_ends(
    server: SSHServer,
) -> None:
    command = [sys.executable, "-c", CLIENT_THAT_FORKS, str(server.port)]
    client = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    clients = [client.pid]
    try:
        clients.append(int(client.stdout.readline()))  # the child it forked
        assert sorted(server.client_pids()) == sorted(clients)
        with server.clients_stopped() as stopped:
            assert sorted(stopped) == sorted(clients)
            statuses = {psutil.Process(pid).status() for pid in clients}
            assert statuses == {psutil.STATUS_STOPPED}
            assert server.session_pids()  # sshd still serves the connection
        assert psutil.STATUS_STOPPED not in {psutil.Process(pid).status() for pid in clients}
    finally:
        for pid in clients:
            os.kill(pid, signal.SIGKILL)
        client.wait()


def test_remote_commands_get_the_servers_home_and_temporary_folder(tmp_path: Path) -> None:
    with running_ssh_server(tmp_path) as server:
        result = asyncio.run(run(server, "echo $HOME $TMPDIR"))
    assert result.stdout.split() == [str(server.home), str(server.home / "tmp")]
    assert server.home.is_relative_to(tmp_path)


def test_extra_config_changes_the_settings(tmp_path: Path) -> None:
    home = tmp_path / "home"

    async def two_sessions(server: SSHServer) -> None:
        assert (await run(server, "echo $HOME")).stdout == f"{home}\n"
        async with asyncssh.connect(**server.asyncssh_options()) as connection:
            first = await connection.create_process("sleep 30")
            try:
                await connection.run("true")
            finally:
                first.terminate()

    settings = {"MaxSessions": 1, "SetEnv": f"HOME={home}"}
    with (
        running_ssh_server(tmp_path, extra_config=settings) as server,
        pytest.raises(asyncssh.ChannelOpenError),
    ):
        asyncio.run(two_sessions(server))
    assert (tmp_path / "sshd_config").read_text().startswith("MaxSessions 1\n")


def test_nothing_runs_after_the_block(tmp_path: Path) -> None:
    async def stop_with_processes_running() -> SSHServer:
        with running_ssh_server(tmp_path) as server:
            connection = await asyncssh.connect(**server.asyncssh_options())
            # A command that leaves its session's process tree, and one still in it.
            await connection.run("nohup sleep 120 >/dev/null 2>&1 &", check=True)
            await connection.create_process("sleep 120")
            # sshd, the two commands, and the shell of one if the user's shell is dash.
            await asyncio.to_thread(
                wait_until, lambda: len(sleeps_of(tmp_path, server.port)) == 2, 30
            )
            running = processes_of(tmp_path, server.port)
            assert server.pid in [p.pid for p in running]
            assert len(sleeps_of(tmp_path, server.port)) == 2, running
            sessions.extend(psutil.Process(pid) for pid in server.session_pids())
        connection.close()
        await connection.wait_closed()
        return server

    sessions: list[psutil.Process] = []
    server = asyncio.run(stop_with_processes_running())
    assert len(sessions) == 1
    assert processes_of(tmp_path, server.port) == []
    assert not any(session.is_running() for session in sessions)  # and reaped by sshd
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=10).close()
    with socket.socket() as sock:  # as servers do: its closed connections may be in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", server.port))


def test_a_port_taken_meanwhile_is_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], ssh_module.free_port()])
        monkeypatch.setattr(ssh_module, "free_port", lambda: next(ports))
        with running_ssh_server(tmp_path) as server:
            assert server.port != taken.getsockname()[1]
            assert asyncio.run(run(server, "echo ok")).stdout == "ok\n"


def test_an_error_in_the_settings_shows_sshd_log(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="Bad configuration option: NoSuchOption"),
        running_ssh_server(tmp_path, extra_config=["NoSuchOption yes"]),
    ):
        pass
    assert processes_of(tmp_path, 0) == []


@pytest.mark.parametrize(
    ("program", "package"), [("sshd", "openssh-server"), ("ssh-keygen", "openssh-client")]
)
def test_a_missing_program_names_its_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, program: str, package: str
) -> None:
    real_which = ssh_module.shutil.which
    monkeypatch.setattr(ssh_module, "_PROGRAM_FOLDERS", (str(tmp_path / "empty"),))
    path = os.pathsep.join(["/usr/sbin", "/usr/bin", os.environ.get("PATH", "")])
    monkeypatch.setattr(
        ssh_module.shutil,
        "which",
        lambda name: None if name == program else real_which(name, path=path),
    )
    with (
        pytest.raises(RuntimeError, match=f"{program} not found") as error,
        running_ssh_server(tmp_path / "sshd"),
    ):
        pass
    assert f"sudo apt install {package} (Debian/Ubuntu)" in str(error.value)
