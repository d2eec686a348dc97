"""Start and stop a real S3 object store on 127.0.0.1, for tests of executors that
stage tasks through object storage: OpenStack Swift (Debian's ``swift`` packages)
with its ``s3api`` middleware, run as the current user (root or not), with every
file in one folder.

Four processes, started at once: Swift's proxy (the S3 endpoint) and its account,
container and object servers, each with one device (a folder) and rings of one
replica. The proxy authenticates with Swift's ``tempauth``: one user, whose S3
access key is ``test:tester`` and whose secret is new for each server. Its cache
(tokens, account and container information) lives in the proxy's process
(``covalent_plugin_testing.swift_cache``), so no memcached is needed. Requests
are signed and checked as by AWS (Signature Version 4, also in presigned URLs);
addressing is path-style (``http://127.0.0.1:PORT/bucket/key``).

The servers run with Debian's ``/usr/bin/python3`` (its ``dist-packages`` hold
``python3-swift``), in an environment of their own: none of this process's
``PYTHONPATH`` or virtual environment. Swift always reads ``/etc/swift/swift.conf``
(its path is fixed in Swift), which the ``swift`` package installs; everything else
comes from the server's folder. They write nothing outside it: their log lines go
to the folder (``*.log``), not to the system's log (they are sent to a socket path
that does not exist, so Swift falls back to UDP on 127.0.0.1:514, where by default
nothing listens), and no replicator, auditor or updater runs. Object metadata lives
in user extended attributes of the device folder's files, which ext4, XFS and Btrfs
have (tmpfs only from Linux 6.6 on).

Measured on a loaded 2-core machine (load 2.3-3.5; Debian 12, Swift 2.30.1, boto3
1.44): the first signed request succeeds 6.7-9.7 s after the start, which costs
5.7-6.0 s of CPU time (about 1.5 s for each server, mostly imports; eventlet's green
DNS, which Swift does not need here, is turned off, ``EVENTLET_NO_GREENDNS``: its
imports, dnspython and httpx, cost each server 0.7 s more); idle, the four processes hold 207
MB of memory (RSS; 151 MB their own, USS) and used no CPU time in 10 s.

On exit the four processes are stopped, also after an error. The Swift servers call
``setsid()``: they are stopped by process id, not by process group.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covalent_plugin_testing.processes import free_ports, listens, stop_process

START_TIMEOUT_SECONDS = 60
STOP_GRACE_SECONDS = 5
HOST = "127.0.0.1"
REGION = "us-east-1"
ACCESS_KEY = "test:tester"
#: The Debian and Ubuntu packages of the programs a server needs.
PACKAGES = "swift swift-proxy swift-object swift-container swift-account"
#: The Python that runs Swift's servers (Debian's, whose ``dist-packages`` hold
#: ``python3-swift``).
SWIFT_PYTHON = "/usr/bin/python3"
#: The file Swift always reads (its path is fixed in Swift).
SWIFT_CONF = Path("/etc/swift/swift.conf")
SERVERS = ("account", "container", "object", "proxy")
_PROGRAM_FOLDER = Path("/usr/bin")
_START_ATTEMPTS = 3
_POLL_SECONDS = 0.05
_PROXY_PIPELINE = (
    "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api "
    "tempauth copy slo dlo versioned_writes proxy-logging proxy-server"
)


class SwiftNotFoundError(RuntimeError):
    """A program or file the S3 server needs is not installed."""


@dataclass
class S3Server:
    """A running S3 endpoint: where it listens, its region and its one user's keys."""

    #: ``http://127.0.0.1:PORT``, the proxy's address.
    endpoint_url: str
    #: The region in which requests are signed, ``us-east-1``.
    region: str
    #: Swift's account and user, ``test:tester``.
    access_key: str
    #: The user's secret, new for each server.
    secret_key: str
    #: The server's files, with ``etc`` (configuration, rings), ``srv`` (the objects) and logs.
    folder: Path
    #: The proxy's port (the endpoint's) and the account, container and object servers'.
    ports: dict[str, int]
    _processes: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)

    def client(
        self,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        config: Any = None,
    ) -> Any:
        """A boto3 S3 client of this server: Signature Version 4, path-style
        addressing, this server's region and keys (``access_key`` or ``secret_key``
        replace them, to test a refusal). ``config``, a ``botocore.config.Config``,
        is merged over those settings (timeouts, retries). No AWS credentials of the
        environment or ``~/.aws`` are used. boto3 must be installed
        (``pip install boto3``)."""
        import boto3
        from botocore.config import Config

        settings = Config(signature_version="s3v4", s3={"addressing_style": "path"})
        session = boto3.session.Session(
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
        )
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            config=settings.merge(config) if config is not None else settings,
        )

    def new_bucket(self, prefix: str = "test-") -> str:
        """Create an empty bucket named ``prefix`` and random letters; return its name."""
        name = f"{prefix}{secrets.token_hex(8)}"
        self.client().create_bucket(Bucket=name)
        return name

    def remove_bucket(self, bucket: str) -> None:
        """Remove ``bucket`` with its objects and its unfinished multipart uploads."""
        client = self.client()
        uploads = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket)
        for upload in (item for page in uploads for item in page.get("Uploads", [])):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for key in self.keys(bucket):  # delete_objects needs Content-MD5 here
            client.delete_object(Bucket=bucket, Key=key)
        client.delete_bucket(Bucket=bucket)

    def keys(self, bucket: str) -> list[str]:
        """The keys of every object in ``bucket``, in S3's order."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def pids(self) -> dict[str, int]:
        """The process id of each running server: ``proxy``, ``account`` ..."""
        return {name: p.pid for name, p in self._processes.items() if p.poll() is None}

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Stop the proxy (the endpoint) until the block ends, then start it again on
        the same port and wait until a signed request works: within the block every
        request is refused (connection refused); buckets and objects are kept."""
        stop_process(self._processes["proxy"], STOP_GRACE_SECONDS)
        try:
            yield
        finally:
            self._processes["proxy"] = _start_server(self, "proxy")
            _wait_until_ready(self)

    def logs(self) -> str:
        """The end of each server's log, for error messages."""
        return _logs(self.folder)


def find_programs() -> dict[str, str]:
    """The path of each Swift server program; raise :class:`SwiftNotFoundError`,
    which names the packages to install, if one (or ``/etc/swift/swift.conf``, or
    Debian's Python) is missing."""
    found = {name: _PROGRAM_FOLDER / f"swift-{name}-server" for name in SERVERS}
    missing = [str(path) for path in [*found.values(), SWIFT_CONF] if not path.exists()]
    if not os.access(SWIFT_PYTHON, os.X_OK):
        missing.append(SWIFT_PYTHON)
    if missing:
        raise SwiftNotFoundError(
            f"{', '.join(missing)} not found: a test S3 server needs OpenStack Swift "
            f"with Debian's Python; on Debian or Ubuntu: sudo apt install {PACKAGES}"
        )
    return {name: str(path) for name, path in found.items()}


def _check_xattrs(folder: Path) -> None:
    """Raise if ``folder``'s file system lacks the user extended attributes in which
    Swift's object server keeps each object's metadata."""
    probe = folder / ".xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.swift.probe", b"1")
    except OSError as error:
        raise RuntimeError(
            f"{folder} is on a file system without user extended attributes ({error}), "
            "in which Swift keeps object metadata: give the S3 server a folder on ext4, "
            "XFS or Btrfs (tmpfs has them from Linux 6.6 on)"
        ) from None
    finally:
        probe.unlink()


def _default_section(name: str, folder: Path, port: int) -> list[str]:
    user = pwd.getpwuid(os.geteuid()).pw_name
    lines = [
        "[DEFAULT]",
        f"bind_ip = {HOST}",
        f"bind_port = {port}",
        "bind_timeout = 2",  # a port taken meanwhile: fail in 2 s, not 30 s
        "workers = 0",  # one process, no forked workers
        f"user = {user}",
        f"swift_dir = {folder / 'etc'}",
        f"log_name = {name}-server",
        f"log_address = {folder / 'no-syslog'}",  # not /dev/log: the system's log
    ]
    if name != "proxy":
        lines += [f"devices = {folder / 'srv'}", "mount_check = false"]
    return lines


def _backend_config(name: str, folder: Path, port: int) -> str:
    lines = [
        *_default_section(name, folder, port),
        "[pipeline:main]",
        f"pipeline = {name}-server",
        f"[app:{name}-server]",
        f"use = egg:swift#{name}",
    ]
    return "\n".join(lines) + "\n"


def _proxy_config(folder: Path, port: int, secret_key: str) -> str:
    account, user = ACCESS_KEY.split(":")
    settings = {
        "tempauth": [f"user_{account}_{user} = {secret_key} .admin"],
        "s3api": [f"location = {REGION}", "allow_multipart_uploads = true"],
    }
    lines = [
        *_default_section("proxy", folder, port),
        "[pipeline:main]",
        f"pipeline = {_PROXY_PIPELINE}",
        "[app:proxy-server]",
        "use = egg:swift#proxy",
        "account_autocreate = true",
        "allow_account_management = true",
        "[filter:cache]",
        "paste.filter_factory = swift_cache:filter_factory",
    ]
    for name in dict.fromkeys(_PROXY_PIPELINE.split()[:-1]):  # Swift's own filters
        if name != "cache":
            egg = name.replace("-", "_")
            lines += [f"[filter:{name}]", f"use = egg:swift#{egg}", *settings.get(name, [])]
    return "\n".join(lines) + "\n"


#: The proxy's program: it builds the rings (one device, one replica; the proxy reads
#: them as it starts, the other servers never), then runs ``swift-proxy-server`` in the
#: same process, which saves a second interpreter's start.
_PROXY_SCRIPT = """
import runpy, sys
from swift.common.ring import RingBuilder
program, config, etc, *ports = sys.argv[1:]
for name, port in zip(("account", "container", "object"), ports):
    builder = RingBuilder(6, 1, 1)
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": "d1", "weight": 1, "meta": ""})
    builder.rebalance()
    builder.get_ring().save(f"{etc}/{name}.ring.gz")
sys.argv = [program, config, "-v"]
runpy.run_path(program, run_name="__main__")
"""


def _swift_environment(folder: Path) -> dict[str, str]:
    """The servers' environment: the swift_cache filter on the path, none of this
    process's Python settings (``PYTHONPATH``, a virtual environment)."""
    keep = ("HOME", "TMPDIR", "LANG", "LC_ALL", "TZ")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    return env | {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(folder / "lib"),
        "PYTHONDONTWRITEBYTECODE": "1",
        # eventlet's DNS resolver, which Swift does not need (every address is an IP),
        # imports dnspython and httpx: 0.7 s of CPU time in each server's start.
        "EVENTLET_NO_GREENDNS": "yes",
    }


def _write_files(folder: Path, ports: dict[str, int], secret_key: str) -> None:
    """The configuration and the cache filter, for these ports."""
    etc, lib = folder / "etc", folder / "lib"
    for sub in (etc, lib, folder / "srv" / "d1"):
        sub.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("swift_cache.py"), lib / "swift_cache.py")
    for name in SERVERS[:3]:
        (etc / f"{name}-server.conf").write_text(_backend_config(name, folder, ports[name]))
    (etc / "proxy-server.conf").write_text(_proxy_config(folder, ports["proxy"], secret_key))


def _start_server(server: S3Server, name: str) -> subprocess.Popen:
    """Start one Swift server in the foreground, its output in ``folder/NAME.log``."""
    folder = server.folder
    program, config = (
        _PROGRAM_FOLDER / f"swift-{name}-server",
        folder / "etc" / f"{name}-server.conf",
    )
    command = [SWIFT_PYTHON, str(program), str(config), "-v"]
    if name == "proxy":
        rings = [str(server.ports[backend]) for backend in SERVERS[:3]]
        command = [SWIFT_PYTHON, "-c", _PROXY_SCRIPT, *command[1:3], str(folder / "etc"), *rings]
    with (folder / f"{name}.log").open("a") as output:
        return subprocess.Popen(
            command,
            cwd=folder,
            env=_swift_environment(folder),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _logs(folder: Path) -> str:
    parts = []
    for name in SERVERS:
        path = folder / f"{name}.log"
        if path.exists() and (lines := path.read_text(errors="replace").splitlines(True)):
            parts.append(f"--- {path} (end) ---\n" + "".join(lines[-30:]))
    return "".join(parts) or f"(no logs in {folder})"


class _PortTaken(RuntimeError):
    """A server's port was taken between the choice and the start."""


def _wait_until_ready(server: S3Server) -> None:
    """Wait until every server listens and a signed request (list the buckets)
    succeeds."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    once = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2)
    probe, refused = server.client(config=once), "no answer"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if ended := [name for name, p in server._processes.items() if p.poll() is not None]:
            logs = _logs(server.folder)
            if "Could not bind" in logs:
                raise _PortTaken(logs)
            raise RuntimeError(
                f"Swift's {', '.join(ended)} server stopped while starting:\n{logs}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the S3 server at {server.endpoint_url} did not answer a signed request in "
                f"{START_TIMEOUT_SECONDS} s ({refused}):\n{_logs(server.folder)}"
            )
        if all(listens(p.pid, server.ports[n]) for n, p in server._processes.items()):
            try:
                probe.list_buckets()
                return
            except (BotoCoreError, ClientError) as error:
                refused = str(error)
        time.sleep(_POLL_SECONDS)


def _start(folder: Path, stack: ExitStack) -> S3Server:
    """Write the files, start the four servers at once and wait until they serve;
    register on ``stack`` what stops them."""
    for name in SERVERS:
        (folder / f"{name}.log").unlink(missing_ok=True)
    ports = dict(zip(SERVERS, free_ports(len(SERVERS)), strict=True))
    server = S3Server(
        endpoint_url=f"http://{HOST}:{ports['proxy']}",
        region=REGION,
        access_key=ACCESS_KEY,
        secret_key=secrets.token_hex(16),
        folder=folder,
        ports=ports,
    )
    _write_files(folder, ports, server.secret_key)
    stack.callback(_stop_all, server)
    for name in SERVERS:
        server._processes[name] = _start_server(server, name)
    _wait_until_ready(server)
    return server


def _stop_all(server: S3Server) -> None:
    for process in server._processes.values():
        if process.poll() is None:
            process.terminate()
    for process in server._processes.values():
        stop_process(process, STOP_GRACE_SECONDS)


@contextmanager
def running_s3_server(folder: Path) -> Iterator[S3Server]:
    """Run an S3 server (Swift's proxy with s3api, and its account, container and
    object servers) on free ports of 127.0.0.1, with its files in ``folder``; yield
    it once a signed request works. On exit stop every server; the folder (with the
    objects in ``folder/srv``) is left to the caller."""
    find_programs()
    try:
        import boto3  # noqa: F401  (the readiness check and the clients need it)
    except ImportError:
        raise RuntimeError("the S3 server's clients need boto3: pip install boto3") from None
    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    _check_xattrs(folder)
    for attempt in range(_START_ATTEMPTS):
        with ExitStack() as stack:
            try:
                server = _start(folder, stack)
            except _PortTaken:
                if attempt == _START_ATTEMPTS - 1:
                    raise
                continue
            yield server
            return
