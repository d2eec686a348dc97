"""Every executor of the scorecard, as a class of the conformance suite without
``known_gaps``: a case passes or fails on its own. The run command
(:mod:`tests.scorecard.run`) picks one class per pytest process, so that what one
executor's tasks do to the server (``local``'s broken pool) cannot touch another's
verdicts. Our executors are configured as in ``tests/test_conformance.py``; the
upstream SSH and Slurm plugins as ``benchmarks/remote_cases.py`` runs them."""

import tempfile
from typing import ClassVar

import pytest

from covalent_plugin_testing.conformance import ExecutorConformance
from tests import test_conformance as ours

pytestmark = pytest.mark.server

#: The host names the upstream plugins connect to (they take no port): the server's
#: ``~/.ssh/config`` maps them to the sshds' ports.
SSH_ALIAS, SLURM_ALIAS = "scorecard-sshd", "scorecard-slurm-sshd"

#: The fixture of tests/test_conformance.py: a Dask cluster for this module.
dask_cluster = ours.dask_cluster


class NoGaps:
    """Put first among the bases: the class declares no gap, whatever its other
    base does."""

    known_gaps: ClassVar[dict[str, str]] = {}


@pytest.fixture(scope="module")
def slurm_over_ssh(tmp_path_factory, covalent_only):
    """A Slurm cluster, an sshd whose sessions reach it, and a ``bashrc`` for
    ``SlurmExecutor`` (which always activates conda)."""
    from benchmarks.remote_cases import slurm_over_ssh

    with slurm_over_ssh(tmp_path_factory.mktemp("slurm-over-ssh"), covalent_only) as parts:
        yield parts


def map_alias(covalent_server, alias: str, sshd) -> None:
    from benchmarks.remote_cases import write_ssh_aliases

    write_ssh_aliases(covalent_server.home, {alias: sshd})


def new_folder(sshd, name: str) -> str:
    return tempfile.mkdtemp(dir=sshd.home, prefix=f"{name}-")


class TestLocal(NoGaps, ours.TestLocal):
    pass


class TestDask(ExecutorConformance):
    @pytest.fixture
    def executor(self, dask_cluster):
        from covalent.executor import DaskExecutor

        return DaskExecutor(scheduler_address=dask_cluster.address)


class TestCovalentSSHPlugin(ExecutorConformance):
    @pytest.fixture
    def executor(self, covalent_server, ssh_server, tmp_path):
        from covalent_ssh_plugin.ssh import SSHExecutor

        map_alias(covalent_server, SSH_ALIAS, ssh_server)
        (tmp_path / "cache").mkdir()  # the plugin writes there, without making it
        return SSHExecutor(
            username=ssh_server.username,
            hostname=SSH_ALIAS,
            ssh_key_file=ssh_server.key_file,
            cache_dir=str(tmp_path / "cache"),
            python_path=ssh_server.python,
            remote_cache=new_folder(ssh_server, "ssh-cache"),
            remote_workdir=new_folder(ssh_server, "ssh-workdir"),
        )


class TestCovalentSlurmPlugin(ExecutorConformance):
    timeout = ours.TestSlurmTiming.timeout

    @pytest.fixture
    def executor(self, covalent_server, slurm_over_ssh, tmp_path):
        from covalent_slurm_plugin.slurm import SlurmExecutor

        _, sshd, bashrc = slurm_over_ssh
        map_alias(covalent_server, SLURM_ALIAS, sshd)
        return SlurmExecutor(
            username=sshd.username,
            address=SLURM_ALIAS,
            ssh_key_file=sshd.key_file,
            remote_workdir=new_folder(sshd, "slurm-workdir"),
            bashrc_path=str(bashrc),
            use_srun=False,
            cache_dir=str(tmp_path / "cache"),
        )


class TestTiming(NoGaps, ours.TestTiming):
    pass


class TestAsyncTiming(NoGaps, ours.TestAsyncTiming):
    pass


class TestDaskTiming(NoGaps, ours.TestDaskTiming):
    pass


class TestSSHTiming(NoGaps, ours.TestSSHTiming):
    pass


class TestSlurmTiming(NoGaps, ours.TestSlurmTiming):
    pass


class TestBatchTiming(NoGaps, ours.TestBatchTiming):
    pass


class TestSmallTiming(ExecutorConformance):
    """The guide's in-thread plugin (docs_src/plugins/small_timing.py): the run
    command gives this class's server that plugin folder."""

    @pytest.fixture
    def executor(self):
        return "small_timing"
