"""BatchTimingExecutor against real parts: an S3 object store (the kit's
``s3_server``, OpenStack Swift), Slurm's REST API (``slurm_rest``, slurmrestd, on the
kit's ``slurm_cluster``) and a real Covalent server; the jobs run a Python with
Covalent but not this package and share no folder with the server. Results, output
and exits; a 50 MB result; cancel through the API; every way a job ends without an
outcome; the faults a user meets, each named; nothing left in the bucket."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import covalent as ct
import pytest

from tests.batch_parts import options_for
from tests.covalent_only_venv import other_cloudpickle
from tests.refusing_proxy import refusing_proxy
from tests.waiting import wait_for_pids, wait_until, wait_until_gone
from tests.workflows import (
    add_multiply_workflow,
    assert_inside_the_config_folder,
    assert_misbehaviour_reported,
    big_result_workflow,
    covalent_folders_workflow,
    dispatch_and_wait,
    error_of,
    misbehaving_workflow,
    node_ids_by_name,
    records,
    sleeping_workflow,
)
from timing_executor.batch_timing import BatchTimingExecutor
from timing_executor.server_side import slurm_rest_api
from timing_executor.server_side.slurm_rest_api import (
    JobState,
    RestJobs,
    SlurmRestApi,
    SlurmRestError,
)

pytestmark = pytest.mark.server


@pytest.fixture
def options(
    slurm_rest, s3_server, s3_bucket, server_credentials, token_file, covalent_only, tmp_path
) -> dict:
    return options_for(slurm_rest, s3_server, s3_bucket, token_file, covalent_only, tmp_path)


@pytest.fixture(scope="module")
def out_of_time(
    covalent_server,
    slurm_rest,
    s3_server,
    server_credentials,
    token_file,
    covalent_only,
    tmp_path_factory,
):
    """A task whose job runs over its time limit (one minute), dispatched when the
    module starts: Slurm ends it 60 to 90 s later."""
    folder = tmp_path_factory.mktemp("out-of-time")
    bucket = s3_server.new_bucket()
    executor = BatchTimingExecutor(
        **options_for(slurm_rest, s3_server, bucket, token_file, covalent_only, folder),
        job_options={"time_limit": 1},
    )

    def sleeps_for_ever():
        import time

        time.sleep(600)

    yield executor, folder, ct.dispatch(one_task(executor, sleeps_for_ever))()
    s3_server.remove_bucket(bucket)


@pytest.fixture
def executor(options, tmp_path):
    return BatchTimingExecutor(
        **options, timing_filepath=tmp_path / "records.jsonl", record_format="jsonl"
    )


def one_task(executor, task):
    electron = ct.electron(task, executor=executor)

    @ct.lattice
    def workflow():
        return electron()

    return workflow


def bare_job(name: str) -> dict:
    """The API's description of a job named ``name`` that writes no file."""
    return {
        "name": name,
        "current_working_directory": "/",
        "environment": {"PATH": "/usr/bin:/bin"},
        "standard_output": "/dev/null",
        "standard_error": "/dev/null",
    }


def assert_nothing_left(s3_server, executor, tmp_path):
    """No object in the bucket, no folder of a job on the compute node."""
    assert s3_server.keys(executor.bucket) == []
    assert list((tmp_path / "job-tmp").iterdir()) == []


def test_a_workflow_runs_as_jobs_and_leaves_nothing(
    covalent_server, s3_server, executor, tmp_path, out_of_time
):
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert str(result.status) == "COMPLETED", error_of(result, "add")
    assert result.result == 6
    runs = records(executor, result.dispatch_id)
    assert sorted(run["node_name"] for run in runs.values()) == ["add", "multiply"]
    for run in runs.values():
        assert (run["status"], run["state"], run["node"]) == (
            "COMPLETED",
            "COMPLETED",
            "localhost",
        )
        assert run["job_id"].isdigit()
    assert_nothing_left(s3_server, executor, tmp_path)


def test_output_tracebacks_and_exits_reach_the_nodes_result(
    covalent_server, s3_server, executor, tmp_path
):
    result = dispatch_and_wait(misbehaving_workflow(executor))
    assert str(result.status) == "FAILED"
    assert_misbehaviour_reported(result)
    assert_nothing_left(s3_server, executor, tmp_path)


def test_a_50_mb_result_comes_back_whole(covalent_server, s3_server, executor, tmp_path):
    size = 3_000_000  # a list of 3 million floats pickles to about 27 MB
    result = dispatch_and_wait(big_result_workflow(executor, size))
    assert str(result.status) == "COMPLETED", result.error
    _, numbers = result.result
    assert len(numbers) == size and numbers[-1] == size - 1
    assert_nothing_left(s3_server, executor, tmp_path)


def test_cancel_cancels_the_job_through_the_api(
    covalent_server, slurm_rest, s3_server, executor, tmp_path
):
    markers = tmp_path / "markers"
    markers.mkdir()
    dispatch_id = ct.dispatch(sleeping_workflow(executor, str(markers), seconds=120))()
    pids = wait_for_pids(markers, 1)
    ct.cancel(dispatch_id)
    wait_until_gone(pids, limit=15)
    result = ct.get_result(dispatch_id, wait=True)
    assert str(result.status) == "CANCELLED"
    nap = node_ids_by_name(result)["nap"]
    assert str(result.get_node_result(nap)["status"]) == "CANCELLED"
    run = records(executor, dispatch_id)[nap]
    assert (run["status"], run["state"]) == ("CANCELLED", "CANCELLED")
    assert_nothing_left(s3_server, executor, tmp_path)


def test_a_job_cancelled_outside_covalent_fails_the_node_naming_it(
    covalent_server, slurm_rest, s3_server, executor, tmp_path
):
    markers = tmp_path / "markers"
    markers.mkdir()
    dispatch_id = ct.dispatch(sleeping_workflow(executor, str(markers), seconds=120))()
    wait_for_pids(markers, 1)
    (job_id,) = running_jobs(slurm_rest)
    assert slurm_rest.request("DELETE", slurm_rest.path(f"job/{job_id}")).status == 200
    result = ct.get_result(dispatch_id, wait=True)
    error = error_of(result, "nap")
    assert f"CANCELLED: Slurm job {job_id} was cancelled outside Covalent" in error
    assert_nothing_left(s3_server, executor, tmp_path)


def running_jobs(slurm_rest) -> list[str]:
    """The jobs whose task runs, not the one sleeping over its time limit's."""
    jobs = slurm_rest.request("GET", slurm_rest.path("jobs")).body["jobs"]
    return [
        str(job["job_id"])
        for job in jobs
        if job["job_state"] == "RUNNING" and job["time_limit"] != 1
    ]


def dispatch_a_held_task(executor, folder: Path) -> str:
    """Dispatch a task that starts, then waits (60 s at most) until ``folder/release``
    exists and returns "finished"; return the dispatch's id once it has started."""
    folder.mkdir()

    def held():
        import time

        Path(folder, "started").touch()
        deadline = time.monotonic() + 60
        while not Path(folder, "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return "finished"

    dispatch_id = ct.dispatch(one_task(executor, held))()
    wait_until((folder / "started").exists, 60)
    assert (folder / "started").exists()
    return dispatch_id


def test_the_rest_daemon_restarted_while_a_job_runs(
    covalent_server, slurm_rest, s3_server, executor, tmp_path
):
    """The polls fail while slurmrestd is down, for longer than one request's
    retries (3.5 s of pauses); the job runs on, is found again and its task's
    result comes back."""
    folder = tmp_path / "held"
    dispatch_id = dispatch_a_held_task(executor, folder)
    with slurm_rest.stopped():
        time.sleep(6)  # polls refused meanwhile
        (folder / "release").touch()
        time.sleep(2)
    result = ct.get_result(dispatch_id, wait=True)
    assert result.result == "finished", result.error
    assert_nothing_left(s3_server, executor, tmp_path)


def test_the_object_store_restarted_while_a_job_runs(
    covalent_server, slurm_rest, s3_server, executor, tmp_path
):
    """The task ends while the S3 endpoint is down: the job's uploads are refused
    and tried again (1, 2, 4 ... s apart) until the endpoint is back; the job then
    ends, and its result comes back whole with nothing left in the bucket."""
    folder = tmp_path / "held"
    dispatch_id = dispatch_a_held_task(executor, folder)
    with s3_server.stopped():
        (folder / "release").touch()
        time.sleep(4)  # the job's first uploads are refused meanwhile
    result = ct.get_result(dispatch_id, wait=True)
    assert result.result == "finished", result.error
    assert_nothing_left(s3_server, executor, tmp_path)


def test_what_a_killed_server_left_is_removed_by_a_later_task(
    covalent_server, s3_server, slurm_rest, executor, tmp_path
):
    """A server that was killed while a task ran left its objects and its job (named
    as the executor names them, with a moment their URLs expired long ago): the
    next task removes those objects and cancels that job, and keeps the objects of
    a task whose URLs are still good."""
    client = s3_server.client()
    gone, live = "timing-tasks/1000-stopped", f"timing-tasks/{int(time.time()) + 3600}-live"
    for key in (f"{gone}/task.pkl", f"{gone}/outcome.pkl", f"{live}/task.pkl"):
        client.put_object(Bucket=executor.bucket, Key=key, Body=b"left behind")
    job = bare_job("covalent-1000-stopped-0")
    script = {"job": job, "script": "#!/bin/bash\nsleep 300\n"}
    left = slurm_rest.request("POST", slurm_rest.path("job/submit"), script).body["job_id"]

    def state() -> str:
        answer = slurm_rest.request("GET", slurm_rest.path(f"job/{left}"))
        return answer.body["jobs"][0]["job_state"]

    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert result.result == 6, result.error
    wait_until(lambda: state() == "CANCELLED", 30)
    assert state() == "CANCELLED"
    assert s3_server.keys(executor.bucket) == [f"{live}/task.pkl"]
    client.delete_object(Bucket=executor.bucket, Key=f"{live}/task.pkl")


def test_a_transient_5xx_is_tried_again_on_every_side(
    covalent_server, s3_server, slurm_rest, options, tmp_path
):
    """The first request of each kind to the object store and to slurmrestd gets
    503: the server's S3 calls (boto3's retries), the job's downloads and uploads
    and the REST requests are all tried again, and the result comes back."""
    s3_port = int(s3_server.endpoint_url.rsplit(":", 1)[1])
    with refusing_proxy(s3_port) as s3, refusing_proxy(slurm_rest.port) as rest:
        executor = BatchTimingExecutor(
            **(options | {"s3_endpoint_url": s3.url, "rest_url": rest.url}),
            timing_filepath=tmp_path / "records.jsonl",
        )
        result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert result.result == 6, result.error
    refused_objects = {(method, path.rsplit("/", 1)[1]) for method, path in s3.refused}
    for kind in [("PUT", "task.pkl"), ("GET", "task.pkl"), ("PUT", "outcome.pkl")]:
        assert kind in refused_objects, s3.refused  # by the server, by the job, by the job
    refused_calls = {(method, path.rsplit("/", 1)[1]) for method, path in rest.refused}
    assert {("POST", "submit"), ("GET", "jobs")} <= refused_calls, rest.refused
    assert_nothing_left(s3_server, executor, tmp_path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"aws_profile": "wrong-secret"}, "SignatureDoesNotMatch"),
        ({"bucket": "no-such-bucket"}, "NoSuchBucket"),
        ({"s3_endpoint_url": "http://127.0.0.1:9"}, "cannot connect to http://127.0.0.1:9"),
        ({"rest_url": "http://127.0.0.1:9"}, "slurmrestd at http://127.0.0.1:9"),
        ({"partition": "nowhere"}, "Invalid partition name specified"),
        ({"bucket": ""}, "bucket is empty: give the S3 bucket tasks are staged in"),
    ],
)
def test_a_fault_fails_the_node_within_seconds_naming_it(
    covalent_server, s3_server, options, change, expected
):
    executor = BatchTimingExecutor(**(options | change))
    started = time.monotonic()
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    assert time.monotonic() - started < 30
    error = error_of(result, "add")
    assert expected in error
    assert s3_server.keys(options["bucket"]) == []


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("bad_token", "slurmctld refused the token"),
        ("expired_token", "expired at"),
    ],
)
def test_a_refused_token_is_named_with_the_fix(
    covalent_server, slurm_rest, s3_server, options, tmp_path, token, expected
):
    """A bad signature: slurmrestd answers 500 (not 401); an expired token is
    seen by the executor itself, before any request."""
    path = tmp_path / "token"
    path.write_text(getattr(slurm_rest, token)())
    executor = BatchTimingExecutor(**(options | {"token_file": str(path)}))
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    error = error_of(result, "add")
    assert f"slurmrestd at {slurm_rest.url}" in error
    assert expected in error and "token" in error
    assert s3_server.keys(options["bucket"]) == []


def test_bad_options_fail_when_the_executor_is_made(options):
    with pytest.raises(ValueError, match="rest_url 'localhost:6820' is not an http"):
        BatchTimingExecutor(**(options | {"rest_url": "localhost:6820"}))
    with pytest.raises(ValueError, match="job_options may not set 'script'"):
        BatchTimingExecutor(**options, job_options={"script": "#!/bin/sh"})
    with pytest.raises(ValueError, match="url_lifetime 0 is not"):
        BatchTimingExecutor(**(options | {"url_lifetime": 0}))


def test_the_object_store_module_imports_boto3_only_for_a_client():
    """``import covalent`` imports every plugin in every task's process: boto3 (0.2 s
    of CPU time) must not come with it."""
    code = "import sys, timing_executor.server_side.object_store; print('boto3' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_why_a_job_left_no_outcome_names_the_apis_words():
    from timing_executor.batch_timing import why_job_failed
    from timing_executor.server_side.object_store import ObjectStore

    store = ObjectStore("tasks", "http://127.0.0.1:8080")
    timeout = why_job_failed("7", JobState("TIMEOUT", "TimeLimit"), store)
    assert timeout.startswith("TIMEOUT: Slurm job 7 ran out of time")
    failed = why_job_failed("7", JobState("NODE_FAIL", "NodeDown"), store)
    assert failed == (
        "NODE_FAIL: Slurm job 7 ended before the task returned (state NODE_FAIL, reason NodeDown)"
    )
    versions = why_job_failed("7", JobState("FAILED", "NonZeroExitCode", 97 << 8), store)
    assert "the compute node's Python runs other versions" in versions


def test_a_job_submitted_while_a_poll_is_on_its_way_is_not_taken_for_gone(slurm_rest, token_file):
    """Many tasks at once: a job submitted while the poll's request is out is missing
    from its answer, and has not ended for that (the likely cause of 3 tasks of 50
    failing in CI once)."""
    late: list[asyncio.Task] = []
    job = bare_job("late")

    class SubmitsDuringThePoll(SlurmRestApi):
        async def jobs(self):
            answer = await super().jobs()
            if not late:  # as another task would, before this answer is read
                job_id = await self.submit(job, "#!/bin/bash\nsleep 1\n")
                late.append(asyncio.create_task(poller.end_of(job_id)))
                await asyncio.sleep(0)
            return answer

    api = SubmitsDuringThePoll(slurm_rest.url, slurm_rest.user, str(token_file))
    poller = RestJobs(api, poll_freq=0.5, unreachable_timeout=60)

    async def both_ends() -> tuple[JobState, JobState]:
        first = await poller.end_of(await api.submit(job, "#!/bin/bash\nsleep 3\n"))
        return first, await late[0]

    first, late_end = asyncio.run(both_ends())
    assert (first.state, late_end.state) == ("COMPLETED", "COMPLETED")


def test_cancel_and_wait_returns_once_the_job_has_ended(slurm_rest, token_file, tmp_path):
    """A job that takes 2 s to end once cancelled (as a runner that still uploads
    its outcome) has ended when ``cancel_and_wait`` returns: it was not merely sent
    the signal, so objects removed then stay removed."""
    ended = tmp_path / "ended"
    script = f"#!/bin/bash\ntrap 'sleep 2; touch {ended}; exit 143' TERM\nsleep 300 & wait\n"
    api = SlurmRestApi(slurm_rest.url, slurm_rest.user, str(token_file))

    async def cancel_once_running() -> str:
        job_id = await api.submit(bare_job("ends-slowly"), script)
        while (await api.jobs())[job_id].state != "RUNNING":
            await asyncio.sleep(0.1)
        await api.cancel_and_wait(job_id)
        return (await api.jobs())[job_id].state

    assert (asyncio.run(cancel_once_running()), ended.exists()) == ("CANCELLED", True)


def test_a_daemon_serving_none_of_the_spoken_versions_is_named(
    slurm_rest, token_file, monkeypatch
):
    """As against a Slurm whose API versions this module does not speak: the first
    request fails naming what the daemon serves, what the executor speaks, and the fix."""
    monkeypatch.setattr(slurm_rest_api, "SPOKEN_VERSIONS", ("v0.0.99",))
    monkeypatch.setattr(slurm_rest_api, "_versions", {})
    api = SlurmRestApi(slurm_rest.url, slurm_rest.user, str(token_file))
    with pytest.raises(SlurmRestError) as raised:
        asyncio.run(api.jobs())
    said = str(raised.value)
    assert said.startswith(f"slurmrestd at {slurm_rest.url} serves the API versions [")
    assert "'v0.0.38'" in said and "speaks ['v0.0.99']" in said
    assert "Start slurmrestd with -s openapi/v0.0.99" in said


def test_a_compute_node_python_with_other_versions_fails_naming_it(
    covalent_server, options, tmp_path
):
    other = other_cloudpickle(tmp_path / "other-cloudpickle")
    env = options["env"] | {"PYTHONPATH": str(other)}
    executor = BatchTimingExecutor(**(options | {"env": env}))
    result = dispatch_and_wait(add_multiply_workflow(executor), 1, 2)
    error = error_of(result, "add")
    assert "the compute node's Python runs other versions than this server" in error


def test_a_job_over_its_time_limit_fails_naming_it(s3_server, out_of_time):
    executor, folder, dispatch_id = out_of_time
    result = ct.get_result(dispatch_id, wait=True)
    error = error_of(result, "sleeps_for_ever")
    assert "TIMEOUT: Slurm job " in error and "ran out of time (its time_limit)" in error
    assert s3_server.keys(executor.bucket) == []
    assert list((folder / "job-tmp").iterdir()) == []


def test_the_jobs_covalent_keeps_its_folders_in_the_jobs_own(
    covalent_server, s3_server, executor, tmp_path
):
    """A job of the REST API gets HOME from the password database (this machine's
    real home, here): its Covalent must make nothing there, all in its folder."""
    result = dispatch_and_wait(covalent_folders_workflow(executor))
    assert str(result.status) == "COMPLETED", error_of(result, "covalent_folders")
    config = assert_inside_the_config_folder(result.result)
    assert config.parent.parent == tmp_path / "job-tmp"
    assert_nothing_left(s3_server, executor, tmp_path)
