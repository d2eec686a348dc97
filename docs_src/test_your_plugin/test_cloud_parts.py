"""The flow of a cloud batch executor against real parts: a job submitted through
Slurm's REST API fetches its input from an S3 bucket and leaves its output there,
through presigned URLs (the job gets no credentials)."""

import time


def test_a_job_fetches_its_input_and_leaves_its_output(
    s3_server, s3_bucket, slurm_rest
):
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_bucket, Key="input", Body=b"21")
    urls = {
        key: s3.generate_presigned_url(
            method, Params={"Bucket": s3_bucket, "Key": key}, ExpiresIn=600
        )
        for method, key in [("get_object", "input"), ("put_object", "output")]
    }
    script = f"""#!/bin/bash
python3 - <<'EOF'
from urllib.request import Request, urlopen
x = int(urlopen({urls["input"]!r}).read())
urlopen(Request({urls["output"]!r}, data=str(2 * x).encode(), method="PUT"))
EOF
"""
    # The fields of a job in Slurm 22.05's API, v0.0.38 (slurm_rest.api_version).
    job = {
        "name": "double",
        "partition": slurm_rest.cluster.partition,
        "current_working_directory": str(slurm_rest.cluster.folder),
        "environment": {"PATH": "/usr/bin:/bin"},
        "standard_output": "/dev/null",
    }
    submitted = slurm_rest.request(
        "POST", slurm_rest.path("job/submit"), {"job": job, "script": script}
    )
    assert submitted.status == 200, submitted.body
    job_path = slurm_rest.path(f"job/{submitted.body['job_id']}")

    deadline = time.monotonic() + 60
    while (
        state := slurm_rest.request("GET", job_path).body["jobs"][0]["job_state"]
    ) in (
        "PENDING",
        "RUNNING",
    ):
        assert time.monotonic() < deadline, "the job did not end in 60 s"
        time.sleep(0.1)
    assert state == "COMPLETED"
    assert s3.get_object(Bucket=s3_bucket, Key="output")["Body"].read() == b"42"
