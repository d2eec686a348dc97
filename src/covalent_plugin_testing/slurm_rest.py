"""Start and stop Slurm's REST API (``slurmrestd``, Debian's ``slurmrestd`` package)
for a cluster of :mod:`covalent_plugin_testing.slurm_cluster`, on 127.0.0.1, for
tests of executors that submit jobs over HTTP as the cloud batch services do.

Clients authenticate with a JSON Web Token: each request carries the headers
``X-SLURM-USER-NAME`` (the user) and ``X-SLURM-USER-TOKEN`` (the token). slurmrestd
passes the token on to slurmctld, which checks its signature with the cluster's key
(``AuthAltTypes=auth/jwt``); the daemon itself talks to slurmctld with the same kind
of token (``SLURM_JWT=daemon``), not with MUNGE. So the cluster must be started with
the lines of :func:`rest_config` (the session fixtures do that).

Tokens are minted here (HS256 over the cluster's key, the claims ``exp``, ``iat``
and ``sun``, as ``scontrol token`` makes them): :meth:`SlurmRest.new_token`, and
:meth:`SlurmRest.expired_token` and :meth:`SlurmRest.bad_token` for tests of
failures. What slurmrestd answers then: no token, 401 ``Authentication failure``
(text); a bad signature or an expired token, 500 with the error of the Slurm call
that slurmctld refused (``errors[0]``, such as ``{"source": "slurm_load_jobs"}``),
not 401.

The REST paths carry the API's version (``/slurm/v0.0.38/ping``), and the versions
move between Slurm releases, and so do the fields of their JSON: Debian 12's Slurm
22.05 serves ``v0.0.36`` to ``v0.0.38``; newer releases serve newer ones (Ubuntu
24.04, on which Read the Docs builds, has Slurm 23.11). :attr:`SlurmRest.api_version`
is the highest version the daemon serves, read from its own OpenAPI document
(``/openapi/v3``), as SchedMD advises clients to do. The daemon loads every OpenAPI
plugin its Slurm has (``slurmrestd -s list``) but the accounting ones (``dbv*``,
``slurmdbd``): they need the accounting daemon, which this cluster does not run, and
slurmrestd stops without it.

slurmrestd refuses to run as root or as the cluster's ``SlurmUser``, which is the
current user here; ``SLURMRESTD_SECURITY=disable_user_check`` lets it run anyway, as
the current user, root included.

Measured on a loaded 2-core machine (load 2.7-3.9; Debian 12, Slurm 22.05.8): the
first authenticated ping answers 0.10-0.16 s after slurmrestd's start; the first job
submitted over REST is COMPLETED 3.0-3.1 s after the cluster is up (slurmctld's first
scheduling pass), the next ones, one after the other, 0.9-1.2 s after their
submission; idle, slurmrestd holds 13 MB (RSS).

On exit slurmrestd is stopped (by process id), also after an error; the cluster and
its jobs are left to their own context manager.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covalent_plugin_testing.processes import free_ports, listens, stop_process
from covalent_plugin_testing.slurm_cluster import SlurmCluster

START_TIMEOUT_SECONDS = 60
STOP_GRACE_SECONDS = 5
REQUEST_TIMEOUT_SECONDS = 30
HOST = "127.0.0.1"
#: How long the tokens of :attr:`SlurmRest.token` last, longer than any session.
TOKEN_LIFESPAN_SECONDS = 7 * 24 * 3600
#: The Debian and Ubuntu package of slurmrestd.
PACKAGES = "slurmrestd"
_SBIN_FOLDERS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_START_ATTEMPTS = 3
_POLL_SECONDS = 0.05
_KEY_FILE = "jwt.key"
#: OpenAPI plugins that need slurmdbd, the accounting daemon.
_ACCOUNTING_PLUGIN = re.compile(r"openapi/(dbv[\d.]+|slurmdbd)$")
_VERSION_PATH = re.compile(r"^/slurm/(v\d+\.\d+\.\d+)/")


class SlurmRestNotFoundError(RuntimeError):
    """slurmrestd is not installed."""


def rest_config(folder: Path) -> list[str]:
    """The ``slurm.conf`` lines a cluster needs for :func:`running_slurm_rest` (give
    them to :func:`~covalent_plugin_testing.slurm_cluster.running_slurm_cluster` as
    ``extra_config``): JWT as a second kind of authentication, with a key of 32
    random bytes written to ``folder/jwt.key`` (mode 600) unless it exists; and no
    minimum interval between scheduling passes (``sched_min_interval=0``), with the
    base settings' ``batch_sched_delay=0`` repeated, since this line replaces theirs.
    (With Slurm 22.05 the interval made no difference measured: jobs submitted one
    after the other over REST were COMPLETED 0.9-1.2 s after their submission with or
    without it.)"""
    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / _KEY_FILE
    if not key.exists():
        key.touch(mode=0o600)
        key.write_bytes(secrets.token_bytes(32))
    return [
        "AuthAltTypes=auth/jwt",
        f"AuthAltParameters=jwt_key={key}",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
    ]


def mint_token(key: bytes, user: str, lifespan: float, *, issued_at: float | None = None) -> str:
    """A Slurm JSON Web Token for ``user``, signed with ``key`` (HS256), valid for
    ``lifespan`` seconds from ``issued_at`` (now unless given)."""
    issued = int(time.time() if issued_at is None else issued_at)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"exp": issued + int(lifespan), "iat": issued, "sun": user}
    signed = ".".join(_base64url(json.dumps(part).encode()) for part in (header, claims))
    signature = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_base64url(signature)}"


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class RestAnswer:
    """What slurmrestd answered: the HTTP status and the body (JSON decoded, else
    text)."""

    status: int
    body: Any

    @property
    def errors(self) -> list[dict]:
        """The ``errors`` the JSON body lists (``[]`` if none or not JSON)."""
        return self.body.get("errors", []) if isinstance(self.body, dict) else []


@dataclass
class SlurmRest:
    """A running slurmrestd: its URL, the user and a token that it accepts, and the
    API version it serves."""

    #: ``http://127.0.0.1:PORT``.
    url: str
    port: int
    #: The user the tokens name, who runs the jobs (the current user).
    user: str
    #: A token for :attr:`user`, valid for :data:`TOKEN_LIFESPAN_SECONDS`.
    token: str
    #: The highest API version the daemon serves, such as ``"v0.0.38"``.
    api_version: str
    #: Every API version the daemon serves, lowest first.
    api_versions: tuple[str, ...]
    #: The cluster whose slurmctld the daemon talks to.
    cluster: SlurmCluster
    #: The cluster's JWT key, with which tokens are signed.
    key_file: Path
    #: slurmrestd's output (appended to at each start).
    log: Path
    _process: subprocess.Popen | None = field(default=None, repr=False)
    #: Where the log of the daemon's last start begins.
    _log_start: int = field(default=0, repr=False)

    @property
    def pid(self) -> int | None:
        """slurmrestd's process id (None while it is stopped)."""
        return self._process.pid if self._process and self._process.poll() is None else None

    def headers(self, token: str | None = None) -> dict[str, str]:
        """The authentication headers, with :attr:`token` unless ``token`` is given."""
        return {"X-SLURM-USER-NAME": self.user, "X-SLURM-USER-TOKEN": token or self.token}

    def path(self, endpoint: str) -> str:
        """The path of ``endpoint`` (``"ping"``, ``"job/submit"``) in
        :attr:`api_version`: ``/slurm/v0.0.38/ping``."""
        return f"/slurm/{self.api_version}/{endpoint.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> RestAnswer:
        """Send one request (``path`` as :meth:`path` gives it, or any other), with
        ``body`` as JSON, and the authentication headers unless ``headers`` replaces
        them (``{}``: none)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={**(self.headers() if headers is None else headers)}
            | ({"Content-Type": "application/json"} if data is not None else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as answer:
                return RestAnswer(answer.status, _decoded(answer.read()))
        except urllib.error.HTTPError as error:
            return RestAnswer(error.code, _decoded(error.read()))

    def new_token(self, lifespan: float = TOKEN_LIFESPAN_SECONDS, user: str | None = None) -> str:
        """A token for ``user`` (:attr:`user` unless given), valid for ``lifespan``
        seconds, signed with the cluster's key."""
        return mint_token(self.key_file.read_bytes(), user or self.user, lifespan)

    def expired_token(self) -> str:
        """A token with the cluster's signature that expired an hour ago."""
        key = self.key_file.read_bytes()
        return mint_token(key, self.user, 60, issued_at=time.time() - 3600)

    def bad_token(self) -> str:
        """A token signed with another key: its signature does not check."""
        return mint_token(secrets.token_bytes(32), self.user, TOKEN_LIFESPAN_SECONDS)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Stop slurmrestd until the block ends (requests are refused: connection
        refused), then start it again on the same port and wait until it answers.
        The cluster and its jobs run on meanwhile."""
        _stop_daemon(self)
        try:
            yield
        finally:
            _start_daemon(self)
            _wait_until_ready(self)

    def logs(self) -> str:
        """The end of slurmrestd's log, for error messages."""
        if not self.log.exists():
            return f"(no log at {self.log})"
        lines = self.log.read_text(errors="replace").splitlines(True)
        return f"--- {self.log} (end) ---\n" + "".join(lines[-30:])


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def find_slurmrestd() -> str:
    """slurmrestd's path; raise :class:`SlurmRestNotFoundError`, which names the
    package to install, if it is missing."""
    search_path = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN_FOLDERS])
    if found := shutil.which("slurmrestd", path=search_path):
        return found
    raise SlurmRestNotFoundError(
        f"slurmrestd not found (searched PATH and {', '.join(_SBIN_FOLDERS)}): Slurm's "
        f"REST API needs it; on Debian or Ubuntu: sudo apt install {PACKAGES}"
    )


def _key_file(cluster: SlurmCluster) -> Path:
    """The JWT key the cluster's ``slurm.conf`` names, or an error saying how to
    start the cluster with one."""
    settings = dict(
        line.split("=", 1) for line in cluster.conf.read_text().splitlines() if "=" in line
    )
    parameters = dict(
        item.split("=", 1) for item in settings.get("AuthAltParameters", "").split(",") if item
    )
    if "auth/jwt" not in settings.get("AuthAltTypes", "") or "jwt_key" not in parameters:
        raise ValueError(
            f"the Slurm cluster of {cluster.conf} has no JWT authentication, which "
            "slurmrestd needs: start it with running_slurm_cluster(folder, "
            "extra_config=rest_config(folder))"
        )
    return Path(parameters["jwt_key"])


def _daemon_environment(cluster: SlurmCluster) -> dict[str, str]:
    return cluster.env | {"SLURM_JWT": "daemon", "SLURMRESTD_SECURITY": "disable_user_check"}


def _openapi_plugins(slurmrestd: str, cluster: SlurmCluster) -> list[str]:
    """The OpenAPI plugins slurmrestd has (``slurmrestd -s list``), the accounting
    ones left out."""
    listed = subprocess.run(
        [slurmrestd, "-f", str(cluster.conf), "-s", "list"],
        env=_daemon_environment(cluster),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=START_TIMEOUT_SECONDS,
    )
    names = re.findall(r"\bopenapi/\S+", listed.stdout + listed.stderr)
    plugins = [name for name in dict.fromkeys(names) if not _ACCOUNTING_PLUGIN.match(name)]
    if not plugins:
        raise RuntimeError(
            f"slurmrestd -s list named no OpenAPI plugin ({listed.returncode}): "
            f"{listed.stdout}{listed.stderr}"
        )
    return plugins


def _start_daemon(rest: SlurmRest) -> None:
    """Start slurmrestd in the foreground, its output at the end of its log."""
    slurmrestd, cluster = find_slurmrestd(), rest.cluster
    plugins = ",".join(_openapi_plugins(slurmrestd, cluster))
    command = [slurmrestd, "-f", str(cluster.conf), "-s", plugins, "-a", "rest_auth/jwt"]
    with rest.log.open("a") as output:
        rest._log_start = output.tell()
        rest._process = subprocess.Popen(
            [*command, f"{HOST}:{rest.port}"],
            env=_daemon_environment(cluster),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


class _PortTaken(RuntimeError):
    """slurmrestd's port was taken between the choice and the start."""


def _served_versions(rest: SlurmRest) -> tuple[str, ...]:
    """The API versions of the paths of the daemon's OpenAPI document, lowest first."""
    answer = rest.request("GET", "/openapi/v3")
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise RuntimeError(f"slurmrestd's /openapi/v3 answered {answer.status}: {answer.body}")
    found = {
        match[1] for path in answer.body.get("paths", {}) if (match := _VERSION_PATH.match(path))
    }
    return tuple(sorted(found, key=lambda v: tuple(int(n) for n in v[1:].split("."))))


def _wait_until_ready(rest: SlurmRest) -> None:
    """Wait until slurmrestd listens and an authenticated ping of slurmctld succeeds."""
    process = rest._process
    assert process is not None
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            logs = rest.logs()
            with rest.log.open("rb") as log:
                log.seek(rest._log_start)
                if b"Address already in use" in log.read():
                    raise _PortTaken(f"{rest.url} is taken:\n{logs}")
            raise RuntimeError(f"slurmrestd stopped while starting:\n{logs}")
        if listens(process.pid, rest.port):
            versions = _served_versions(rest)
            ping = rest.request("GET", f"/slurm/{versions[-1]}/ping") if versions else None
            if ping is not None and ping.status == 200:
                rest.api_versions, rest.api_version = versions, versions[-1]
                return
            if time.monotonic() > deadline or ping is None:
                raise RuntimeError(
                    f"slurmrestd at {rest.url} serves {versions or 'no Slurm API'}; "
                    f"its ping answered {ping}:\n{rest.logs()}\n{rest.cluster.logs()}"
                )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"slurmrestd did not start in {START_TIMEOUT_SECONDS} s:\n{rest.logs()}"
            )
        time.sleep(_POLL_SECONDS)


def _stop_daemon(rest: SlurmRest) -> None:
    if rest._process is not None:
        stop_process(rest._process, STOP_GRACE_SECONDS)


def _start(cluster: SlurmCluster, port: int, stack: ExitStack) -> SlurmRest:
    key_file = _key_file(cluster)
    user = pwd.getpwuid(os.geteuid()).pw_name
    rest = SlurmRest(
        url=f"http://{HOST}:{port}",
        port=port,
        user=user,
        token=mint_token(key_file.read_bytes(), user, TOKEN_LIFESPAN_SECONDS),
        api_version="",
        api_versions=(),
        cluster=cluster,
        key_file=key_file,
        log=cluster.folder / "slurmrestd.log",
    )
    stack.callback(_stop_daemon, rest)
    _start_daemon(rest)
    _wait_until_ready(rest)
    return rest


@contextmanager
def running_slurm_rest(cluster: SlurmCluster, *, port: int | None = None) -> Iterator[SlurmRest]:
    """Run slurmrestd for ``cluster`` (started with :func:`rest_config`'s lines) on
    ``port`` of 127.0.0.1 (a free one unless given); yield it once an authenticated
    ping succeeds. On exit stop it; the cluster runs on."""
    find_slurmrestd()
    _key_file(cluster)
    for attempt in range(_START_ATTEMPTS):
        with ExitStack() as stack:
            try:
                rest = _start(cluster, port or free_ports(1)[0], stack)
            except _PortTaken as error:
                if port is not None or attempt == _START_ATTEMPTS - 1:
                    raise RuntimeError(f"slurmrestd could not listen: {error}") from None
                continue
            yield rest
            return
