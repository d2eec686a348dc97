"""What a server that stopped left of its batch tasks, removed by a later one.

A Covalent server that dies while its jobs run cannot cancel them or remove their
objects; a job that ends later still leaves its outcome in the bucket. So each task
carries in its names the moment its presigned URLs expire (seconds since the epoch):
its objects are ``timing-tasks/EXPIRES-.../...`` and its job is
``covalent-EXPIRES-...``. Once that moment is :data:`GRACE_SECONDS` past, no job can
read or write those objects and no server waits for them. A task that starts
removes such objects and cancels such jobs of its user, in the background, unless a
task of this server process did so for its bucket and slurmrestd in the last
:data:`SWEEP_INTERVAL_SECONDS`; a failure there only waits for the next sweep.
"""

import asyncio
import time
from contextlib import suppress

from timing_executor.server_side.object_store import TASKS_FOLDER, ObjectStore
from timing_executor.server_side.slurm_rest_api import ENDED_STATES, SlurmRestApi

#: Seconds after a task's URLs expire before what it left counts as orphaned, so
#: that an upload begun just before the end has that long to finish.
GRACE_SECONDS = 600
#: Seconds between two sweeps of one bucket and slurmrestd by one server.
SWEEP_INTERVAL_SECONDS = 3600
#: When this process last swept each bucket and slurmrestd, and the sweeps running.
_swept: dict[tuple, float] = {}
_sweeps: set[asyncio.Task] = set()


def expiry(name: str) -> int | None:
    """The moment in a task's folder (``EXPIRES-...``) or job name
    (``covalent-EXPIRES-...``), or None if the name has none."""
    word = name.removeprefix("covalent-").split("-", 1)[0]
    return int(word) if word.isdigit() else None


def expired(name: str, now: float) -> bool:
    moment = expiry(name)
    return moment is not None and moment + GRACE_SECONDS < now


async def remove_orphans(store: ObjectStore, api: SlurmRestApi) -> None:
    """Remove the objects and cancel the jobs that expired tasks left."""
    now = time.time()
    for key in await store.keys(f"{TASKS_FOLDER}/"):
        if expired(key.split("/")[1], now):
            await store.call(
                "remove an orphaned object",
                "delete_object",
                Bucket=store.bucket,
                Key=key,
            )
    for job_id, job in (await api.jobs()).items():
        if (
            job.user == api.user
            and job.name.startswith("covalent-")
            and expired(job.name, now)
            and job.state not in ENDED_STATES
        ):
            await api.cancel(job_id)


def sweep_now_and_then(store: ObjectStore, api: SlurmRestApi) -> None:
    """Start :func:`remove_orphans` in the background, unless this process did for
    this bucket and slurmrestd less than :data:`SWEEP_INTERVAL_SECONDS` ago."""
    key = (store, api.url, api.user)
    last = _swept.get(key)
    if last is not None and time.monotonic() - last < SWEEP_INTERVAL_SECONDS:
        return
    _swept[key] = time.monotonic()

    async def sweep() -> None:
        with suppress(ConnectionError):  # the next sweep tries again
            await remove_orphans(store, api)

    task = asyncio.get_running_loop().create_task(sweep())
    _sweeps.add(task)
    task.add_done_callback(_sweeps.discard)
