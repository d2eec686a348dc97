"""covalent_plugin_testing.slurm_rest against a real slurmrestd (Debian's slurmrestd)
beside the session's Slurm: jobs submitted over REST complete or are cancelled,
tokens are checked, and a daemon restarted while a job runs finds it again. These
tests speak the API version Debian 12's Slurm 22.05 serves, v0.0.38."""

import socket
import urllib.error
from pathlib import Path

import psutil
import pytest

from covalent_plugin_testing import slurm_rest as rest_module
from covalent_plugin_testing.slurm_cluster import SlurmCluster, running_slurm_cluster
from covalent_plugin_testing.slurm_rest import (
    SlurmRest,
    SlurmRestNotFoundError,
    running_slurm_rest,
)
from tests.waiting import wait_until

SPOKEN = "v0.0.38"


def submit(rest: SlurmRest, script: str, folder: Path) -> int:
    """Submit ``script`` over REST (v0.0.38's fields); return the job's id."""
    assert rest.api_version == SPOKEN, f"these tests speak {SPOKEN}, not {rest.api_version}"
    job = {
        "name": "rest-test",
        "partition": rest.cluster.partition,
        "current_working_directory": str(folder),
        "environment": {"PATH": "/usr/bin:/bin"},
        "standard_output": str(folder / "out.txt"),
        "standard_error": str(folder / "err.txt"),
        "nodes": 1,
        "tasks": 1,
        "time_limit": 10,
    }
    answer = rest.request("POST", rest.path("job/submit"), {"job": job, "script": script})
    assert (answer.status, answer.errors) == (200, []), answer.body
    return answer.body["job_id"]


def job(rest: SlurmRest, job_id: int) -> dict:
    """What ``GET job/{id}`` says of the job."""
    answer = rest.request("GET", rest.path(f"job/{job_id}"))
    assert answer.status == 200, answer.body
    return answer.body["jobs"][0]


def wait_for_state(rest: SlurmRest, job_id: int, state: str, limit: float = 60) -> dict:
    wait_until(lambda: job(rest, job_id)["job_state"] == state, limit)
    found = job(rest, job_id)
    assert found["job_state"] == state, found
    return found


def test_an_authenticated_ping_answers_in_the_version_found(slurm_rest: SlurmRest) -> None:
    answer = slurm_rest.request("GET", slurm_rest.path("ping"))
    assert answer.status == 200, answer.body
    assert answer.body["pings"][0]["ping"] == "UP"
    # The daemon names the plugin that answered: the version found is the one served.
    assert answer.body["meta"]["plugin"]["type"] == f"openapi/{slurm_rest.api_version}"
    assert slurm_rest.api_versions[-1] == slurm_rest.api_version
    assert slurm_rest.url == f"http://127.0.0.1:{slurm_rest.port}"


def test_the_session_cluster_has_the_rest_settings(slurm_cluster: SlurmCluster) -> None:
    config = slurm_cluster.run("scontrol", "show", "config", check=True).stdout
    pairs = (line.split("=", 1) for line in config.splitlines() if "=" in line)
    settings = {key.strip(): value.strip() for key, value in pairs}
    assert settings["AuthAltTypes"] == "auth/jwt"
    assert settings["SchedulerParameters"] == "batch_sched_delay=0,sched_min_interval=0"


def test_a_job_submitted_over_rest_completes(slurm_rest: SlurmRest, tmp_path: Path) -> None:
    job_id = submit(slurm_rest, "#!/bin/bash\necho hello from $SLURM_JOB_ID\n", tmp_path)
    done = wait_for_state(slurm_rest, job_id, "COMPLETED")
    assert done["exit_code"] == 0
    assert done["user_name"] == slurm_rest.user
    assert (tmp_path / "out.txt").read_text() == f"hello from {job_id}\n"


def test_a_failing_job_reports_its_exit_status(slurm_rest: SlurmRest, tmp_path: Path) -> None:
    job_id = submit(slurm_rest, "#!/bin/bash\nexit 3\n", tmp_path)
    failed = wait_for_state(slurm_rest, job_id, "FAILED")
    assert (failed["state_reason"], failed["exit_code"]) == ("NonZeroExitCode", 3 << 8)


def test_delete_cancels_a_running_job(
    slurm_rest: SlurmRest, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    job_id = submit(slurm_rest, "#!/bin/bash\nsleep 300\n", tmp_path)
    wait_for_state(slurm_rest, job_id, "RUNNING")
    answer = slurm_rest.request("DELETE", slurm_rest.path(f"job/{job_id}"))
    assert (answer.status, answer.errors) == (200, []), answer.body
    wait_for_state(slurm_rest, job_id, "CANCELLED", limit=30)
    wait_until(lambda: str(job_id) not in slurm_cluster.job_ids(), 30)
    assert str(job_id) not in slurm_cluster.job_ids()


def test_no_token_is_refused_with_401(slurm_rest: SlurmRest) -> None:
    answer = slurm_rest.request("GET", slurm_rest.path("jobs"), headers={})
    assert (answer.status, answer.body) == (401, "Authentication failure")


@pytest.mark.parametrize("kind", ["bad_token", "expired_token"])
def test_a_bad_or_expired_token_gets_500_naming_the_slurm_call(
    slurm_rest: SlurmRest, kind: str
) -> None:
    token = getattr(slurm_rest, kind)()
    answer = slurm_rest.request("GET", slurm_rest.path("jobs"), headers=slurm_rest.headers(token))
    assert answer.status == 500, answer.body
    assert answer.errors[0]["source"] == "slurm_load_jobs"
    assert answer.body["jobs"] == []


def test_a_token_from_scontrol_is_accepted_too(
    slurm_rest: SlurmRest, slurm_cluster: SlurmCluster
) -> None:
    printed = slurm_cluster.run("scontrol", "token", "lifespan=60", check=True).stdout
    token = printed.strip().removeprefix("SLURM_JWT=")
    answer = slurm_rest.request("GET", slurm_rest.path("ping"), headers=slurm_rest.headers(token))
    assert answer.status == 200, answer.body


def test_a_job_is_found_again_after_the_daemon_restarts(
    slurm_rest: SlurmRest, tmp_path: Path
) -> None:
    job_id = submit(slurm_rest, "#!/bin/bash\nsleep 300\n", tmp_path)
    wait_for_state(slurm_rest, job_id, "RUNNING")
    before = slurm_rest.pid
    with slurm_rest.stopped():
        assert slurm_rest.pid is None and not psutil.pid_exists(before)
        with pytest.raises(urllib.error.URLError, match="Connection refused"):
            slurm_rest.request("GET", slurm_rest.path(f"job/{job_id}"))
    assert slurm_rest.pid not in (None, before)
    assert job(slurm_rest, job_id)["job_state"] == "RUNNING"
    assert slurm_rest.request("DELETE", slurm_rest.path(f"job/{job_id}")).status == 200
    wait_for_state(slurm_rest, job_id, "CANCELLED", limit=30)


def test_a_daemon_of_its_own_on_a_port_given_stops_on_exit(
    slurm_rest: SlurmRest, tmp_path: Path
) -> None:
    job_id = submit(slurm_rest, "#!/bin/bash\nsleep 300\n", tmp_path)
    wait_for_state(slurm_rest, job_id, "RUNNING")
    with running_slurm_rest(slurm_rest.cluster) as first:
        port, pid = first.port, first.pid
        assert job(first, job_id)["job_state"] == "RUNNING"
    assert not psutil.pid_exists(pid)
    with running_slurm_rest(slurm_rest.cluster, port=port) as again:
        assert again.url == first.url
        assert job(again, job_id)["job_state"] == "RUNNING"
        assert again.request("DELETE", again.path(f"job/{job_id}")).status == 200
    wait_for_state(slurm_rest, job_id, "CANCELLED", limit=30)


def test_a_port_given_that_is_taken_is_named(slurm_rest: SlurmRest) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(RuntimeError, match=f"127.0.0.1:{port} is taken"),
            running_slurm_rest(slurm_rest.cluster, port=port),
        ):
            pass


def test_a_cluster_without_jwt_is_refused_naming_the_fix(tmp_path: Path) -> None:
    with (
        running_slurm_cluster(tmp_path) as cluster,
        pytest.raises(ValueError, match=r"extra_config=rest_config\(folder\)"),
        running_slurm_rest(cluster),
    ):
        pass


def test_without_slurmrestd_the_error_names_the_package(
    slurm_cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(rest_module, "_SBIN_FOLDERS", ())
    with (
        pytest.raises(SlurmRestNotFoundError, match=r"sudo apt install slurmrestd$"),
        running_slurm_rest(slurm_cluster),
    ):
        pass
