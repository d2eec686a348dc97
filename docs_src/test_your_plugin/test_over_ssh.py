"""A test of an SSH executor (``SSHTimingExecutor``) against a real sshd."""

import covalent as ct


def test_a_task_runs_over_ssh(covalent_server, ssh_server, tmp_path):
    from covalent.executor import SSHTimingExecutor

    executor = SSHTimingExecutor(
        hostname=ssh_server.host,
        port=ssh_server.port,
        username=ssh_server.username,
        ssh_key_file=ssh_server.key_file,
        known_hosts=ssh_server.known_hosts,
        python_path=ssh_server.python,
        remote_workdir=str(ssh_server.home / "work"),
        timing_filepath=tmp_path / "records.log",
    )

    # Defined in the test, the task travels by value: the remote Python
    # cannot import this test module by name.
    @ct.electron(executor=executor)
    def add(x, y):
        return x + y

    @ct.lattice
    def workflow(x, y):
        return add(x, y)

    assert ct.get_result(ct.dispatch(workflow)(1, 2), wait=True).result == 3
