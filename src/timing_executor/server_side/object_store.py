"""A task's objects in an S3 bucket, as the server sees them: the task put there,
the presigned URLs its job gets, what the job left, all removed at the end.

boto3 (as Covalent's AWS plugins use) runs in threads, off the server's event loop.
Its ``standard`` retry mode tries a refused connection, a timeout or a 5xx answer
again with backoff, a bounded number of times; what still fails is raised as an
:class:`ObjectStoreError` that names the endpoint, what was refused and the fix.
"""

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from timing_executor.task_side.staged_task import OUTCOME_FILES

#: Attempts of each request (the first and the retries), and its timeouts.
ATTEMPTS, CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS = 4, 5, 60

#: What each error code of S3 means for the user, and the fix.
FIXES = {
    "InvalidAccessKeyId": "the access key is not known there: check the key of "
    "the profile the server uses (aws_profile, or AWS_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "the request's signature does not check: the secret "
    "key does not belong to the access key (check aws_secret_access_key of the "
    "profile the server uses)",
    "NoSuchBucket": "the bucket does not exist: create it, or name another one "
    "in bucket",
    "AccessDenied": "the credentials may not use this bucket: give them list, "
    "read, write and delete on it",
}


class ObjectStoreError(ConnectionError):
    """A request to the object store failed; the message says which and the fix."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code  #: S3's error code, such as ``NoSuchKey``; empty if none.


@dataclass(frozen=True)
class ObjectStore:
    """Where tasks are staged: a bucket, and how the server reaches it."""

    bucket: str
    #: The store's URL, or ``""`` for AWS's own endpoint of ``region``.
    endpoint_url: str = ""
    region: str = ""
    #: A profile of the server's AWS configuration, or ``""`` for boto3's own chain.
    profile: str = ""

    def where(self) -> str:
        return f"bucket {self.bucket!r} at {self.endpoint_url or 'AWS S3'}"

    def client(self) -> Any:
        """A boto3 client. S3 stores other than AWS's own (Swift, Ceph, MinIO)
        want path-style addresses, so those get them."""
        # Imported here, not with the module: ``import covalent`` imports every
        # installed plugin in every process that imports it (each task's process
        # among them), and boto3 costs about 0.2 s of CPU time there.
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(profile_name=self.profile or None)
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            retries={"max_attempts": ATTEMPTS, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            # Checksums only where S3 requires them: a presigned PUT then holds no
            # checksum the job would have to send.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url or None,
            region_name=self.region or None,
            config=config,
        )

    async def keys(self, prefix: str) -> list[str]:
        """Every key of the bucket under ``prefix``."""
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = await self.call(
                "list the bucket",
                "list_objects_v2",
                Bucket=self.bucket,
                Prefix=prefix,
                **token,
            )
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def call(self, what: str, method: str, **arguments: Any) -> Any:
        """``client.method(**arguments)`` in a thread; failures named (``what``:
        what the server was doing)."""
        try:
            return await asyncio.to_thread(_call, self, method, arguments)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get(
                "HTTPStatusCode"
            )
            fix = FIXES.get(code, "see the object store's own log for why")
            raise ObjectStoreError(
                f"{self.where()} refused to {what} (HTTP {status} {code}): {fix}.",
                code,
            ) from None
        except EndpointConnectionError:
            raise ObjectStoreError(
                f"{self.where()}: cannot connect to {self.endpoint_url or 'S3'} to "
                f"{what} (tried {ATTEMPTS} times): is the object store running "
                "there, and is s3_endpoint_url right?"
            ) from None
        except BotoCoreError as error:
            raise ObjectStoreError(
                f"{self.where()}: cannot {what}: {error}"
            ) from None


_clients: dict[ObjectStore, Any] = {}


def _call(store: ObjectStore, method: str, arguments: dict) -> Any:
    if store not in _clients:  # boto3 clients may be shared between threads
        _clients[store] = store.client()
    return getattr(_clients[store], method)(**arguments)


#: The folder of the bucket that holds every task's objects.
TASKS_FOLDER = "timing-tasks"


class TaskObjects:
    """The objects of one task, ``timing-tasks/EXPIRES-TASK-ID/``: ``task.pkl``
    and the job's outcome files. ``EXPIRES`` is when the task's URLs expire
    (seconds since the epoch): past it, nothing can use them (see
    :mod:`~timing_executor.server_side.batch_orphans`); ``TASK`` names the task,
    such as ``DISPATCH-NODE``, so its objects can be told from other tasks'."""

    def __init__(self, store: ObjectStore, expires: int, task: str) -> None:
        self.store = store
        self.prefix = f"{TASKS_FOLDER}/{expires}-{task}-{uuid.uuid4().hex[:8]}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    async def put_task(self, task: bytes) -> None:
        await self.store.call(
            "store the task",
            "put_object",
            Bucket=self.store.bucket,
            Key=self.key("task.pkl"),
            Body=task,
        )

    async def urls(self, lifetime: int) -> tuple[str, dict[str, str]]:
        """The URL the job reads its task from and one for each outcome file it
        writes, each good for ``lifetime`` seconds and that one object only."""

        async def presign(method: str, name: str) -> str:
            return await self.store.call(
                "sign a URL",
                "generate_presigned_url",
                ClientMethod=method,
                Params={"Bucket": self.store.bucket, "Key": self.key(name)},
                ExpiresIn=lifetime,
            )

        task_url = await presign("get_object", "task.pkl")
        outcome_urls = {
            name: await presign("put_object", name) for name in OUTCOME_FILES
        }
        return task_url, outcome_urls

    async def outcome(self) -> dict[str, bytes]:
        """The outcome files the job left, by name."""
        files = {}
        for name in OUTCOME_FILES:
            try:
                answer = await self.store.call(
                    "read what the job left",
                    "get_object",
                    Bucket=self.store.bucket,
                    Key=self.key(name),
                )
            except ObjectStoreError as error:
                if error.code == "NoSuchKey":
                    continue  # the job did not leave it
                raise
            files[name] = await asyncio.to_thread(answer["Body"].read)
        return files

    async def remove(self) -> None:
        """Remove every object of the task, one request each (some S3 stores want
        a Content-MD5 that boto3 no longer sends with ``delete_objects``)."""
        for name in ("task.pkl", *OUTCOME_FILES):
            await self.store.call(
                "remove the task's objects",
                "delete_object",
                Bucket=self.store.bucket,
                Key=self.key(name),
            )
