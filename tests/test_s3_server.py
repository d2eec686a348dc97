"""covalent_plugin_testing.s3_server against a real Swift with s3api (Debian's swift
packages): objects go in and out whole, signatures are checked (also in presigned
URLs), errors name what is wrong, and a server leaves nothing behind."""

import base64
import hashlib
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from covalent_plugin_testing import s3_server as s3_module
from covalent_plugin_testing.s3_server import S3Server, SwiftNotFoundError, running_s3_server

#: Where Swift would write by default, outside the server's folder.
SYSTEM_FOLDERS = [
    Path(p)
    for p in ("/etc/swift", "/var/cache/swift", "/var/run/swift", "/var/lib/swift",
              "/var/log/swift", "/srv")
]  # fmt: skip


def snapshot(folders: list[Path]) -> dict[str, float]:
    """Every file and folder under ``folders``, with its modification time."""
    found = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")] if folder.exists() else []:
            found[str(path)] = path.lstat().st_mtime
    return found


def processes_of(folder: Path) -> list[psutil.Process]:
    """The running processes with ``folder`` in their command line."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and any(
                str(folder) in word for word in process.cmdline()
            ):
                found.append(process)
        except psutil.Error:
            pass
    return found


def test_an_object_of_10_mb_comes_back_byte_identical_is_listed_and_deleted(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client()
    data = os.urandom(10 * 1024 * 1024)
    client.put_object(Bucket=s3_bucket, Key="task/input.pkl", Body=data)
    client.put_object(Bucket=s3_bucket, Key="task/other", Body=b"x")
    assert client.get_object(Bucket=s3_bucket, Key="task/input.pkl")["Body"].read() == data
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="task/")["Contents"]
    assert {(item["Key"], item["Size"]) for item in listed} == {
        ("task/input.pkl", len(data)),
        ("task/other", 1),
    }
    client.delete_object(Bucket=s3_bucket, Key="task/input.pkl")
    assert s3_server.keys(s3_bucket) == ["task/other"]


def test_a_presigned_get_works_with_urllib_and_a_tampered_one_is_refused(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="result", Body=b"the result")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket, "Key": "result"}, ExpiresIn=60
    )
    assert url.startswith(f"{s3_server.endpoint_url}/{s3_bucket}/result?")
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == b"the result"
    signature = url.rsplit("X-Amz-Signature=", 1)[1]
    tampered = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=30)
    assert refused.value.code == 403
    assert b"SignatureDoesNotMatch" in refused.value.read()
    other_key = url.replace("/result?", "/other?")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(other_key, timeout=30)
    assert refused.value.code == 403


def test_a_wrong_secret_is_refused(s3_server: S3Server, s3_bucket: str) -> None:
    client = s3_server.client(secret_key="not-the-secret")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert s3_server.keys(s3_bucket) == []


def test_an_unknown_access_key_is_refused_as_a_wrong_signature(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client(access_key="test:nobody")
    with pytest.raises(ClientError) as refused:
        client.list_objects_v2(Bucket=s3_bucket)
    # AWS would say InvalidAccessKeyId; Swift's tempauth does not tell them apart.
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_a_missing_bucket_is_named(s3_server: S3Server) -> None:
    with pytest.raises(ClientError) as missing:
        s3_server.client().put_object(Bucket="no-such-bucket", Key="k", Body=b"x")
    error = missing.value.response["Error"]
    assert (error["Code"], error["BucketName"]) == ("NoSuchBucket", "no-such-bucket")


def test_delete_objects_needs_the_content_md5_that_boto3_no_longer_sends(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client()
    for key in ("a", "b"):
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    both = {"Objects": [{"Key": "a"}, {"Key": "b"}]}
    with pytest.raises(ClientError, match="Missing required header for this request: Content-MD5"):
        client.delete_objects(Bucket=s3_bucket, Delete=both)

    def add_content_md5(request, **_) -> None:
        digest = hashlib.md5(request.body).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()

    client.meta.events.register("before-sign.s3.DeleteObjects", add_content_md5)
    deleted = client.delete_objects(Bucket=s3_bucket, Delete=both)["Deleted"]
    assert sorted(item["Key"] for item in deleted) == ["a", "b"]
    assert s3_server.keys(s3_bucket) == []


def test_a_multipart_upload_of_30_mb_comes_back_whole(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    client = s3_server.client()
    data = os.urandom(30 * 1024 * 1024)
    (tmp_path / "big").write_bytes(data)
    from boto3.s3.transfer import TransferConfig

    parts = TransferConfig(
        multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024
    )
    client.upload_file(str(tmp_path / "big"), s3_bucket, "big", Config=parts)
    head = client.head_object(Bucket=s3_bucket, Key="big")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-4"')  # four parts
    assert client.get_object(Bucket=s3_bucket, Key="big")["Body"].read() == data


def test_a_multipart_part_below_5_mib_but_the_last_is_refused(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client()
    upload = client.create_multipart_upload(Bucket=s3_bucket, Key="small-parts")["UploadId"]
    parts = []
    for number, size in ((1, 1024 * 1024), (2, 10)):
        etag = client.upload_part(
            Bucket=s3_bucket, Key="small-parts", UploadId=upload, PartNumber=number,
            Body=b"x" * size,
        )["ETag"]  # fmt: skip
        parts.append({"PartNumber": number, "ETag": etag})
    with pytest.raises(ClientError) as refused:
        client.complete_multipart_upload(
            Bucket=s3_bucket, Key="small-parts", UploadId=upload, MultipartUpload={"Parts": parts}
        )
    assert refused.value.response["Error"]["Code"] == "EntityTooSmall"


@pytest.fixture
def buckets_gone_after(s3_server: S3Server) -> Iterator[list[str]]:
    """Names to check after the test's other fixtures have ended (requested first, it
    ends last): each bucket must be gone."""
    names: list[str] = []
    yield names
    left = [item["Name"] for item in s3_server.client().list_buckets()["Buckets"]]
    assert names and not set(names) & set(left), left


def test_the_bucket_fixture_removes_the_bucket_and_its_objects_after_the_test(
    buckets_gone_after: list[str], s3_server: S3Server, s3_bucket: str
) -> None:
    assert s3_server.keys(s3_bucket) == []
    s3_server.client().put_object(Bucket=s3_bucket, Key="left/by/the/test", Body=b"x")
    buckets_gone_after.append(s3_bucket)


def test_remove_bucket_removes_objects_and_unfinished_uploads(s3_server: S3Server) -> None:
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    for index in range(3):
        client.put_object(Bucket=bucket, Key=f"k{index}", Body=b"x")
    client.create_multipart_upload(Bucket=bucket, Key="unfinished")
    s3_server.remove_bucket(bucket)
    names = [item["Name"] for item in client.list_buckets()["Buckets"]]
    assert bucket not in names
    assert not any(name.startswith(bucket) for name in names)  # nor its segments
    with pytest.raises(ClientError) as missing:
        client.head_bucket(Bucket=bucket)
    assert missing.value.response["Error"]["Code"] == "404"


def test_the_endpoint_stopped_refuses_then_serves_the_same_objects(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client(config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    client.put_object(Bucket=s3_bucket, Key="kept", Body=b"kept")
    proxy = s3_server.pids()["proxy"]
    with s3_server.stopped():
        assert not psutil.pid_exists(proxy) or psutil.Process(proxy).status() == "zombie"
        with pytest.raises(EndpointConnectionError):
            client.get_object(Bucket=s3_bucket, Key="kept")
    assert s3_server.pids()["proxy"] != proxy
    assert client.get_object(Bucket=s3_bucket, Key="kept")["Body"].read() == b"kept"


def test_a_server_writes_only_in_its_folder_and_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, temporary = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temporary.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(temporary))
    before = snapshot(SYSTEM_FOLDERS)
    folder = tmp_path / "s3"
    with running_s3_server(folder) as server:
        assert len(processes_of(folder)) == 4
        pids = list(server.pids().values())
        client = server.client()
        client.create_bucket(Bucket="kept-here")
        client.put_object(Bucket="kept-here", Key="k", Body=b"x")
        assert sorted(os.listdir(folder / "srv" / "d1")) == ["accounts", "containers", "objects"]
    assert processes_of(folder) == []
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert snapshot(SYSTEM_FOLDERS) == before
    assert list(home.iterdir()) == [] and list(temporary.iterdir()) == []


def test_a_port_taken_meanwhile_means_another_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    choose = s3_module.free_ports
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        tries = iter([[*choose(3), taken.getsockname()[1]]])  # the proxy's port
        monkeypatch.setattr(s3_module, "free_ports", lambda n: next(tries, None) or choose(n))
        with running_s3_server(tmp_path) as server:
            assert next(tries, None) is None  # the taken port was tried
            assert server.ports["proxy"] != taken.getsockname()[1]
            assert server.client().list_buckets()["Buckets"] == []
    assert processes_of(tmp_path) == []


def test_without_swift_the_error_names_the_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "_PROGRAM_FOLDER", tmp_path)
    with (
        pytest.raises(
            SwiftNotFoundError, match=f"sudo apt install {s3_module.PACKAGES}$"
        ) as raised,
        running_s3_server(tmp_path / "s3"),
    ):
        pass
    assert "swift-proxy-server" in str(raised.value)
    assert not (tmp_path / "s3").exists()
