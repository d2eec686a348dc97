"""Slurm's REST API (``slurmrestd``), as the server uses it: submit a job, ask for
the state of all jobs with one request, cancel a job (and wait for its end).

Requests go with the standard library's ``urllib`` in threads, off the server's
event loop, each with the user's name and a JSON Web Token read from a file at
each request (so that a renewed token is used at once). A refused connection or a
5xx answer is tried again with backoff a bounded number of times; what still fails
is raised as a :class:`SlurmRestError` that names the URL, what was refused and
the fix.

The paths and the JSON fields change between the API's versions. This module
speaks :data:`SPOKEN_VERSIONS`; it reads which versions the daemon serves from its
own OpenAPI document (``/openapi/v3``), as SchedMD advises, and names both lists
when they share none.
"""

import asyncio
import base64
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

#: The API versions this module speaks (Slurm 22.05's newest), best first.
SPOKEN_VERSIONS = ("v0.0.38",)
#: Attempts of each request, and the first pause between two (doubled after each).
ATTEMPTS, FIRST_PAUSE_SECONDS, TIMEOUT_SECONDS = 4, 0.5, 10
#: What Slurm 22.05's slurmrestd says, with HTTP 500 rather than 401, when
#: slurmctld refuses the token (its signature does not check, or it expired): for
#: a listing of jobs, and for a submission.
TOKEN_REFUSED = ("Unspecified error", "Zero Bytes were transmitted or received")
#: The job states after which a job does no more.
ENDED_STATES = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT",
}  # fmt: skip
#: Seconds a cancelled job may take to end (its processes, their last uploads)
#: before its objects are removed all the same, and between two looks at it.
END_WAIT_SECONDS, END_POLL_SECONDS = 15, 0.25


class SlurmRestError(ConnectionError):
    """A request to slurmrestd failed; the message says which and the fix."""


@dataclass(frozen=True)
class JobState:
    """What the API says of a job."""

    state: str  #: Such as ``RUNNING``, ``COMPLETED`` or ``TIMEOUT``.
    reason: str = ""  #: Slurm's ``state_reason``, such as ``NonZeroExitCode``.
    exit_code: int | None = (
        None  #: The batch script's wait status, as the API gives it.
    )
    node: str = ""
    name: str = ""  #: The job's name.
    user: str = ""  #: The user it runs as.


@dataclass(frozen=True)
class SlurmRestApi:
    """One slurmrestd, and who the server is there."""

    url: str  #: Such as ``http://login.example.org:6820``.
    user: str
    token_file: str = ""  #: A file on the server holding the user's token.

    def token(self) -> str:
        """The token: from :attr:`token_file`, or, if that is empty, the server's
        ``SLURM_JWT`` variable (as ``scontrol token`` prints it)."""
        if not self.token_file:
            token = os.environ.get("SLURM_JWT", "")
            if not token:
                raise SlurmRestError(
                    f"slurmrestd at {self.url}: no token: set token_file to a file "
                    "on the server that holds the user's token, or SLURM_JWT in "
                    "the server's environment (scontrol token lifespan=SECONDS "
                    "prints SLURM_JWT=TOKEN)."
                )
            return token
        path = os.path.expanduser(self.token_file)
        try:
            with open(path) as file:
                token = file.read().strip()
        except OSError as error:
            raise SlurmRestError(
                f"slurmrestd at {self.url}: cannot read the token file {path!r} "
                f"({error.strerror}): write the user's token there "
                "(scontrol token lifespan=SECONDS prints SLURM_JWT=TOKEN)."
            ) from None
        token = token.removeprefix("SLURM_JWT=")
        expires = _expiry(token)
        if expires is not None and expires < time.time():
            when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(expires))
            raise SlurmRestError(
                f"slurmrestd at {self.url}: the token in {path!r} expired at "
                f"{when}: write a new one there (scontrol token lifespan=SECONDS)."
            )
        return token

    async def version(self) -> str:
        """The best version both this module and the daemon speak."""
        return await asyncio.to_thread(_version, self)

    async def request(self, method: str, path: str, body: Any = None) -> dict:
        """One request, tried again after a refused connection or a 5xx answer;
        its JSON answer, or :class:`SlurmRestError`."""
        return await asyncio.to_thread(_request, self, method, path, body)

    async def submit(self, job: dict, script: str) -> str:
        """Submit a batch job; its id."""
        path = f"/slurm/{await self.version()}/job/submit"
        answer = await self.request("POST", path, {"job": job, "script": script})
        return str(answer["job_id"])

    async def jobs(self) -> dict[str, JobState]:
        """Every job slurmctld knows (those that ended less than ``MinJobAge``
        ago too), with one request."""
        answer = await self.request("GET", f"/slurm/{await self.version()}/jobs")
        return {
            str(job["job_id"]): JobState(
                job.get("job_state", ""),
                job.get("state_reason", ""),
                job.get("exit_code"),
                job.get("nodes", ""),
                job.get("name", ""),
                job.get("user_name", ""),
            )
            for job in answer.get("jobs", [])
        }

    async def cancel(self, job_id: str) -> None:
        await self.request("DELETE", f"/slurm/{await self.version()}/job/{job_id}")

    async def cancel_and_wait(self, job_id: str) -> None:
        """Cancel job ``job_id`` and wait until it has ended or Slurm forgot it,
        :data:`END_WAIT_SECONDS` at most: ``DELETE`` only sends the signal, and a
        job that is ending still uploads what its task left."""
        await self.cancel(job_id)
        deadline = time.monotonic() + END_WAIT_SECONDS
        while time.monotonic() < deadline:
            job = (await self.jobs()).get(job_id)
            if job is None or job.state in ENDED_STATES:
                return
            await asyncio.sleep(END_POLL_SECONDS)


def _expiry(token: str) -> float | None:
    """The ``exp`` claim of a JSON Web Token (read, not checked: slurmctld checks
    the signature), or None if it has none."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


_versions: dict[str, str] = {}


def _version(api: SlurmRestApi) -> str:
    if api.url not in _versions:
        paths = _request(api, "GET", "/openapi/v3", None).get("paths", {})
        served = sorted(
            {path.split("/")[2] for path in paths if path.startswith("/slurm/")}
        )
        spoken = [version for version in SPOKEN_VERSIONS if version in served]
        if not spoken:
            raise SlurmRestError(
                f"slurmrestd at {api.url} serves the API versions {served}; this "
                f"executor speaks {list(SPOKEN_VERSIONS)} (Slurm 22.05). Start "
                f"slurmrestd with -s openapi/{SPOKEN_VERSIONS[0]} if its Slurm "
                "has it."
            )
        _versions[api.url] = spoken[0]
    return _versions[api.url]


def _request(api: SlurmRestApi, method: str, path: str, body: Any) -> dict:
    headers = {"X-SLURM-USER-NAME": api.user, "X-SLURM-USER-TOKEN": api.token()}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    where = f"slurmrestd at {api.url} ({method} {path})"
    pause = FIRST_PAUSE_SECONDS
    for attempt in range(1, ATTEMPTS + 1):
        request = urllib.request.Request(
            api.url + path, data, headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            answer = _decoded(error.read())
            if error.code < 500 or attempt == ATTEMPTS or _slurm_refused(answer):
                raise SlurmRestError(_refusal(where, error.code, answer)) from None
        except (OSError, ValueError) as error:  # refused, timed out, not JSON
            if attempt == ATTEMPTS:
                reason = getattr(error, "reason", error)
                raise SlurmRestError(
                    f"{where}: no answer after {ATTEMPTS} attempts ({reason}): is "
                    "slurmrestd running there, and is rest_url right?"
                ) from None
        time.sleep(pause)
        pause *= 2
    raise AssertionError("unreachable")


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip()


def _errors(answer: Any) -> list[dict]:
    return answer.get("errors", []) if isinstance(answer, dict) else []


def _slurm_refused(answer: Any) -> bool:
    """Slurm itself said no (an error number of its own): asking again is no use."""
    return any(
        error.get("error_number", error.get("error_code", -1)) > 0
        for error in _errors(answer)
    )


def _refusal(where: str, status: int, answer: Any) -> str:
    errors = _errors(answer)
    said = (
        "; ".join(
            f"{error.get('error', '')}: {error.get('description', '')}".strip(": ")
            for error in errors
        )
        or str(answer)[:300]
    )
    if status == 401:
        fix = "the user name or token is missing: set rest_user and token_file"
    elif status >= 500 and any(
        error.get("error") in TOKEN_REFUSED for error in errors
    ):
        fix = (
            "slurmrestd answers so when slurmctld refused the token (a bad "
            "signature, or expired): write a new token into token_file (scontrol "
            "token lifespan=SECONDS), or check that slurmctld runs"
        )
    else:
        fix = "Slurm's own words above say what to change"
    return f"{where} answered {status}: {said}. {fix}."


class RestJobs:
    """The jobs this server waits for at one slurmrestd, all polled with one
    request every ``poll_freq`` seconds. While the daemon does not answer, the
    polls go on; after ``unreachable_timeout`` seconds without an answer every
    wait fails, naming the daemon."""

    def __init__(
        self, api: SlurmRestApi, poll_freq: float, unreachable_timeout: float
    ):
        self.api, self.poll_freq = api, poll_freq
        self.unreachable_timeout = unreachable_timeout
        self.waiting: dict[str, asyncio.Future] = {}
        self.seen: dict[str, JobState] = {}
        self.polling: asyncio.Task | None = None

    async def end_of(self, job_id: str) -> JobState:
        """Wait until job ``job_id`` has ended; the API's last word on it."""
        ended = asyncio.get_running_loop().create_future()
        self.waiting[job_id] = ended
        if self.polling is None or self.polling.done():
            self.polling = asyncio.create_task(self._poll())
        try:
            return await ended
        finally:
            self.waiting.pop(job_id, None)

    async def _poll(self) -> None:
        answered = time.monotonic()
        while self.waiting:
            await asyncio.sleep(self.poll_freq)
            # A job submitted while the request is on its way may be missing from
            # the answer: only those waited for before it was sent can be gone.
            asked = set(self.waiting)
            try:
                jobs = await self.api.jobs()
            except SlurmRestError as error:
                if time.monotonic() - answered > self.unreachable_timeout:
                    self._fail(error)
                continue
            answered = time.monotonic()
            for job_id, ended in list(self.waiting.items()):
                job = jobs.get(job_id)
                if job is not None:
                    self.seen[job_id] = job
                elif job_id not in asked:
                    continue
                if (job is None or job.state in ENDED_STATES) and not ended.done():
                    ended.set_result(self.seen.pop(job_id, JobState("")))

    def _fail(self, error: SlurmRestError) -> None:
        message = f"{error} (no answer for {self.unreachable_timeout} s)"
        for ended in self.waiting.values():
            if not ended.done():
                ended.set_exception(SlurmRestError(message))


_jobs: dict[tuple, RestJobs] = {}


def rest_jobs(
    api: SlurmRestApi, poll_freq: float, unreachable_timeout: float
) -> RestJobs:
    """The poller of ``api`` for this event loop."""
    key = (api, poll_freq, unreachable_timeout, id(asyncio.get_running_loop()))
    if key not in _jobs:
        _jobs[key] = RestJobs(api, poll_freq, unreachable_timeout)
    return _jobs[key]
