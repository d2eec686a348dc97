"""The test session runs as a plugin author's would: ``covalent_plugin_testing``
isolates it in a temporary home (before any test module imports covalent) and gives
the session fixtures ``covalent_server`` (a real Covalent server) and ``ssh_server``
(a real sshd), whose tasks run on a Python with Covalent but not this package."""

import pytest

from tests.covalent_only_venv import covalent_only_python, venv_folder

#: tests.batch_parts: the fixtures both batch_timing test modules use.
pytest_plugins = ["covalent_plugin_testing", "tests.batch_parts"]


@pytest.fixture(scope="session")
def covalent_only(tmp_path_factory) -> str:
    """The Python of a venv with Covalent and not this package, as a Dask worker's,
    a remote machine's or a reader's: what runs there shows what a plugin needs."""
    return covalent_only_python(venv_folder(tmp_path_factory.mktemp("covalent-only") / "venv"))


@pytest.fixture(scope="session")
def ssh_server_python(covalent_only) -> str:
    return covalent_only


@pytest.fixture
def ssh_login(ssh_server) -> dict:
    """The arguments with which ``ssh_timing`` and ``slurm_timing`` log in to the
    session's sshd."""
    return {
        "hostname": ssh_server.host,
        "port": ssh_server.port,
        "username": ssh_server.username,
        "ssh_key_file": ssh_server.key_file,
        "known_hosts": ssh_server.known_hosts,
    }
