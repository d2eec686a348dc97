"""What ``batch_timing`` needs from the kit's parts in this session's tests: the S3
store's keys in the Covalent server's own AWS credentials, a token file, and the
executor's options."""

from pathlib import Path

import pytest

#: The profile of the server's AWS credentials that the tests' executors use.
PROFILE = "kit-s3"


@pytest.fixture(scope="session")
def server_credentials(covalent_server, s3_server) -> Path:
    """The kit's S3 keys in the Covalent server's own AWS configuration (its home is
    the kit's), as profiles: the right one, and one with a wrong secret."""
    return write_credentials(covalent_server.home, s3_server, wrong_secret=True)


def write_credentials(home: Path, s3_server, wrong_secret: bool = False) -> Path:
    """The kit's S3 keys as the profile :data:`PROFILE` of ``home``'s AWS
    credentials; ``wrong_secret``: also a profile ``wrong-secret`` with a bad one."""
    folder = home / ".aws"
    folder.mkdir(exist_ok=True)
    credentials = folder / "credentials"
    lines = [
        f"[{PROFILE}]",
        f"aws_access_key_id = {s3_server.access_key}",
        f"aws_secret_access_key = {s3_server.secret_key}",
    ]
    if wrong_secret:
        lines += [
            "[wrong-secret]",
            f"aws_access_key_id = {s3_server.access_key}",
            "aws_secret_access_key = not-the-secret",
        ]
    credentials.write_text("\n".join(lines) + "\n")
    return credentials


@pytest.fixture(scope="session")
def token_file(slurm_rest, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text(slurm_rest.token + "\n")
    return path


def options_for(slurm_rest, s3_server, bucket, token_file, python, folder: Path) -> dict:
    """What the executor needs for the kit's parts; the jobs' folders in ``folder``."""
    job_tmp = folder / "job-tmp"
    job_tmp.mkdir()
    return {
        "rest_url": slurm_rest.url,
        "rest_user": slurm_rest.user,
        "token_file": str(token_file),
        "bucket": bucket,
        "s3_endpoint_url": s3_server.endpoint_url,
        "s3_region": s3_server.region,
        "aws_profile": PROFILE,
        "python_path": python,
        "env": {"TMPDIR": str(job_tmp)},
        "poll_freq": 0.5,
    }
