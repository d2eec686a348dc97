"""Time tasks on a Dask cluster: Covalent's DaskExecutor, extended to record each
task's own CPU time.

``DaskTimingExecutor`` sends each task to the cluster with a small measuring
wrapper that travels with the task: the workers need Covalent (as for
``DaskExecutor``) but not this package. The wrapper times the user's function in
the worker thread that runs it and captures what that thread prints; the
executor, in the Covalent server, appends the record, with the worker's address
and host. Each electron call is a Dask task of its own (a unique key, never
merged with an equal call), and if a worker dies, Dask runs the task again
elsewhere and the executor records the run that finished.
"""

# --8<-- [start:imports]
import asyncio
import io
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle
from covalent._shared_files.config import get_config
from covalent._shared_files.exceptions import TaskCancelledError, TaskRuntimeError
from covalent.executor.executor_plugins import dask as covalent_dask
from dask.distributed import CancelledError, Client, Future, get_worker
from distributed.scheduler import KilledWorker

# --8<-- [end:imports]
# --8<-- [start:helper-imports]
from timing_executor import task_side
from timing_executor.server_side.defaults import empty_means_default
from timing_executor.server_side.records import (
    DEFAULT_TIMING_FILEPATH,
    TaskRecord,
    append_record,
    check_record_format,
    resolve_timing_filepath,
    task_ids,
    task_name,
)
from timing_executor.task_side.measuring import Stopwatch, timed_task

# What runs on the workers goes with each task, by value: they need Covalent
# and Dask, not this package.
cloudpickle.register_pickle_by_value(task_side)
cloudpickle.register_pickle_by_value(sys.modules[__name__])
# --8<-- [end:helper-imports]


# --8<-- [start:worker-side]
class ThreadRouter:
    """A worker's ``sys.stdout`` or ``sys.stderr``, shared by its threads.

    What a task's thread writes goes to that task's buffer; the rest goes where
    it went before.
    """

    def __init__(self, stream: Any) -> None:
        self.stream, self.buffers = stream, {}

    def write(self, text: str) -> int:
        return self.buffers.get(threading.get_ident(), self.stream).write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def routed(name: str) -> ThreadRouter:
    """Install a router as ``sys.<name>`` once per worker process; return it."""
    stream = getattr(sys, name)
    if not hasattr(stream, "buffers"):  # a router of an earlier task is fine too
        stream = ThreadRouter(stream)
        setattr(sys, name, stream)
    return stream


def run_on_worker(
    function: Callable, args: list, kwargs: dict, cpu_clock: Callable[[], float]
) -> dict:
    """Run the task in this worker thread, timed; capture what the thread prints."""
    routers = {name: routed(name) for name in ("stdout", "stderr")}
    buffers = {name: io.StringIO() for name in routers}
    for name, router in routers.items():
        router.buffers[threading.get_ident()] = buffers[name]
    stopwatch = Stopwatch(cpu_clock=cpu_clock)
    report: dict[str, Any] = {"result": None, "error": None, "traceback": None}
    try:
        report["result"] = timed_task(function, stopwatch)(*args, **kwargs)
    except BaseException as exc:  # sys.exit() too: it must not end the worker
        report["error"] = f"{type(exc).__name__}: {exc}"
        frames = exc.__traceback__.tb_next  # from the task's own frame on
        report["traceback"] = "".join(
            traceback.format_exception(type(exc), exc, frames)
        )
    finally:
        for router in routers.values():
            router.buffers.pop(threading.get_ident(), None)
    return {
        **report,
        **{name: buffer.getvalue() for name, buffer in buffers.items()},
        "started_at": stopwatch.started_at,
        "cpu_seconds": stopwatch.cpu_seconds,
        "wall_seconds": stopwatch.wall_seconds,
        "worker": get_worker().address,
        "host": socket.gethostname(),
    }


# --8<-- [end:worker-side]


# --8<-- [start:executor-side]
class ByValue:
    """A function that Dask's task graph carries by value, not by name.

    Dask pickles the graph with the standard pickle, which refers to functions by
    module and name; the scheduler and the workers would then have to import this
    package. Unpickled, this is the function itself, rebuilt by cloudpickle.
    """

    def __init__(self, function: Callable) -> None:
        self.function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __reduce__(self) -> tuple:
        return cloudpickle.loads, (cloudpickle.dumps(self.function),)


@dataclass(frozen=True)
class DaskTaskRecord(TaskRecord):
    """A task's record, with the Dask worker that ran it."""

    worker: str | None = (
        None  #: The worker's address, such as ``tcp://10.0.0.5:4172``.
    )
    host: str | None = None  #: The name of the worker's machine.


#: Clients of schedulers, by address and event loop.
_clients: dict[tuple[str, int], Client] = {}
#: The workers whose versions were found to match this server's.
_checked_workers: set[str] = set()
#: The packages whose versions must match between the server and the cluster,
#: since code pickled on one side is unpickled on the other.
MATCHING_PACKAGES = ("covalent", "cloudpickle", "dask", "distributed")


async def connected_client(scheduler_address: str, timeout: float) -> Client:
    """A client of the scheduler for this event loop, made once and kept.

    Raises a ``ConnectionError`` that names the address if no scheduler answers
    there within ``timeout`` seconds.
    """
    key = (scheduler_address, id(asyncio.get_running_loop()))
    if key not in _clients:
        try:
            _clients[key] = await Client(
                address=scheduler_address, asynchronous=True, timeout=timeout
            )
        except (OSError, TimeoutError) as error:
            raise ConnectionError(
                f"No Dask scheduler answers at {scheduler_address} (waited "
                f"{timeout:g} s: {error}). Start one there, or give the executor "
                "the address of a running one (scheduler_address=...). "
                "'covalent start --no-cluster' leaves [dask] scheduler_address "
                "in covalent.conf pointing at the cluster of an earlier start."
            ) from None
    return _clients[key]


async def check_versions(client: Client) -> None:
    """Raise a ``RuntimeError`` if a worker runs another Python, Covalent,
    cloudpickle, Dask or distributed than this server (once per worker)."""
    identity = await client.scheduler.identity(n_workers=-1)
    workers = set(identity["workers"])
    if workers <= _checked_workers:
        return
    versions = await client.get_versions(packages=["covalent"])
    ours = package_versions(versions["client"])
    differ = {
        worker: theirs
        for worker, info in versions["workers"].items()
        if (theirs := package_versions(info)) != ours
    }
    if differ:
        lines = [f"  this server: {ours}"]
        lines += [
            f"  worker {worker}: {theirs}" for worker, theirs in differ.items()
        ]
        pins = " ".join(f"{name}=={ours[name]}" for name in MATCHING_PACKAGES)
        raise RuntimeError(
            "Dask workers run other versions than this Covalent server, so tasks "
            "pickled here may not unpickle there:\n" + "\n".join(lines) + "\n"
            f"Install the server's versions on the workers (pip install {pins}), "
            f"with Python {ours['python']}."
        )
    _checked_workers.update(workers)


def package_versions(info: dict) -> dict[str, str | None]:
    """The Python minor version and the :data:`MATCHING_PACKAGES` versions that
    ``Client.get_versions`` reports for one process."""
    packages = info.get("packages") or {}
    python = ".".join(str(packages.get("python", "")).split(".")[:2])
    return {
        "python": python,
        **{name: packages.get(name) for name in MATCHING_PACKAGES},
    }


def configured_scheduler() -> str:
    """``[dask] scheduler_address`` from ``covalent.conf``, or an error that says
    how to give one."""
    try:
        address = get_config("dask.scheduler_address")
    except KeyError:
        address = ""
    if not address:
        raise ValueError(
            "DaskTimingExecutor has no scheduler address: pass scheduler_address="
            "'tcp://HOST:8786', or set scheduler_address under [dask] or "
            "[executors.dask_timing] in covalent.conf ('covalent start' without "
            "--no-cluster sets [dask] for the cluster it starts)."
        )
    return address


def failure_report(error: Exception) -> str:
    """Say why the cluster could not run a task."""
    if isinstance(error, KilledWorker):
        runs = error.allowed_failures + 1
        return (
            f"KilledWorker: the task's worker died while running it {runs} times "
            "(the task called os._exit(), crashed, or ran out of memory, or the "
            "workers were lost); Dask ran it again on another worker each time, "
            "then gave up (distributed.scheduler.allowed-failures = "
            f"{error.allowed_failures}). Each run's side effects happened."
        )
    return f"{type(error).__name__}: {error}"


# --8<-- [end:executor-side]

# --8<-- [start:plugin-attributes]
executor_plugin_name = "DaskTimingExecutor"

_EXECUTOR_PLUGIN_DEFAULTS = {
    "scheduler_address": "",
    "timing_filepath": DEFAULT_TIMING_FILEPATH,
    "record_format": "text",
}
# --8<-- [end:plugin-attributes]


# --8<-- [start:executor]
@empty_means_default(_EXECUTOR_PLUGIN_DEFAULTS)
class DaskTimingExecutor(covalent_dask.DaskExecutor):
    """Run each task on a Dask cluster and record its CPU time.

    Args:
        scheduler_address: The Dask scheduler, such as ``tcp://127.0.0.1:8786``;
            empty means ``[dask] scheduler_address`` in ``covalent.conf``, which
            ``covalent start`` sets for the cluster it starts.
        timing_filepath: File the records are appended to, on the server's side.
        record_format: ``"text"`` or ``"jsonl"`` (which adds the worker and host).
        **kwargs: Options every Covalent executor takes, such as ``log_stdout``.

    Raises:
        ValueError: For ``workdir`` or ``create_unique_workdir``, which
            ``DaskExecutor`` takes: a worker's threads share one working folder.
    """

    #: Covalent uses run(), not its send/poll/receive path (see the how-to page).
    SUPPORTS_MANAGED_EXECUTION = False
    #: The clock of the task's CPU time, read on the worker. A worker runs tasks
    #: in threads of one process: only the thread's clock is the task's alone.
    worker_cpu_clock = staticmethod(time.thread_time)
    #: Seconds to wait for the scheduler to answer before the task fails.
    connect_timeout = 10.0

    def __init__(
        self,
        scheduler_address: str = "",
        timing_filepath: str | os.PathLike = DEFAULT_TIMING_FILEPATH,
        record_format: str = "text",
        **kwargs: Any,
    ) -> None:
        for option in ("workdir", "create_unique_workdir"):
            if option in kwargs:
                given = f"{option}={kwargs[option]!r}"
                raise ValueError(
                    f"DaskTimingExecutor does not take {given}: "
                    "a Dask worker runs its tasks in threads of one process, which "
                    "share one working folder, so a folder per task cannot hold. "
                    "Give the task absolute paths instead."
                )
        super().__init__(scheduler_address=scheduler_address, **kwargs)
        self.timing_filepath = resolve_timing_filepath(timing_filepath)
        self.record_format = check_record_format(record_format)

    async def run(
        self, function: Callable, args: list, kwargs: dict, task_metadata: dict
    ) -> Any:
        """Run the task on a worker, record it, return its result."""
        dispatch_id, node_id = task_ids(task_metadata)  # bad metadata fails first
        self.scheduler_address = self.scheduler_address or configured_scheduler()
        client = await connected_client(
            self.scheduler_address, self.connect_timeout
        )
        await check_versions(client)
        key = f"timing-{dispatch_id}-{node_id}-{uuid.uuid4().hex}"  # never merged
        clock = self.worker_cpu_clock
        future = client.submit(
            ByValue(run_on_worker), function, args, kwargs, clock, key=key
        )
        submitted_at, wall_start = time.time(), time.perf_counter()
        if hasattr(self, "_send_queue"):  # run by Covalent, not called by hand
            await self.set_job_handle(key)  # what cancel() gets back
            if await self.get_cancel_requested():  # asked before it was saved
                await client.cancel([future], force=True)
        try:
            report = await future
        except Exception as error:  # cancelled, or its workers kept dying
            report = {"started_at": submitted_at, "cpu_seconds": 0.0}
            report["wall_seconds"] = time.perf_counter() - wall_start
            if isinstance(error, CancelledError):
                self._record(task_metadata, function, report, "CANCELLED")
                raise TaskCancelledError(
                    "The task was cancelled on the cluster."
                ) from None
            report["error"] = report["traceback"] = failure_report(error)
            report["stdout"] = report["stderr"] = ""
        print(report["stdout"], end="", file=self.task_stdout or sys.stdout)
        print(report["stderr"], end="", file=self.task_stderr or sys.stderr)
        status = "COMPLETED" if report["error"] is None else "FAILED"
        self._record(task_metadata, function, report, status)
        if status == "FAILED":
            if self.task_stderr is not None:
                print(report["traceback"], end="", file=self.task_stderr)
            raise TaskRuntimeError(report["traceback"])
        return report["result"]

    async def cancel(self, task_metadata: dict, job_handle: Any) -> bool:
        """Cancel the task's future on the cluster, with the client run() uses.

        Covalent calls this for every node of a cancelled dispatch; a node that
        saved no job handle (``None``) was never submitted.
        """
        if not isinstance(job_handle, str):
            return False
        address = self.scheduler_address or configured_scheduler()
        client = await connected_client(address, self.connect_timeout)
        await client.cancel([Future(job_handle, client=client)], force=True)
        return True

    def _record(
        self, task_metadata: dict, function: Callable, report: dict, status: str
    ) -> None:
        dispatch_id, node_id = task_ids(task_metadata)
        record = DaskTaskRecord(
            dispatch_id=dispatch_id,
            node_id=node_id,
            node_name=task_name(function),
            started_at=report["started_at"],
            cpu_seconds=report["cpu_seconds"],
            wall_seconds=report["wall_seconds"],
            status=status,
            error=report.get("error"),
            worker=report.get("worker"),
            host=report.get("host"),
        )
        line = record.to_line(self.record_format)
        append_record(self.timing_filepath, line, self.task_stderr)


# --8<-- [end:executor]
