"""Start and stop a real Dask cluster on 127.0.0.1: one scheduler, some workers.

Each worker runs in a working folder and a HOME of its own, and all of them are
started from the Python given (for example a venv with Covalent but not this
package), so a test can show what workers need. Everything is stopped on exit,
also after an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covalent_plugin_testing.processes import stop_process

START_TIMEOUT_SECONDS = 120

#: Dask settings that keep an idle cluster quiet. Without them a scheduler and two
#: workers (each with its nanny) use about a fifth of a core doing nothing, mostly for
#: the workers' statistical profiler (a sample every 10 ms) and 20 ms event-loop ticks.
QUIET_DASK_SETTINGS = {
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "2s",
    "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "1s",
}


@dataclass
class DaskCluster:
    """A running scheduler and its workers."""

    address: str
    folder: Path
    workers: list[subprocess.Popen] = field(default_factory=list)

    def worker_addresses(self) -> list[str]:
        """The addresses of the workers the scheduler knows now."""
        with _client(self.address, timeout=30) as client:
            return sorted(client.scheduler_info()["workers"])


@contextmanager
def _client(*args: Any, **kwargs: Any) -> Iterator[Any]:
    """A ``distributed.Client(*args, **kwargs)`` of this process, closed on exit."""
    from distributed import Client

    with warnings.catch_warnings():  # packages this client has and workers lack
        warnings.simplefilter("ignore", UserWarning)
        with Client(*args, **kwargs) as client:
            yield client


def _stop(process: subprocess.Popen) -> None:
    stop_process(process, grace=20)


def _address_in(scheduler_file: Path) -> str | None:
    """The address a scheduler file names, or None while it is missing or half written."""
    try:
        return json.loads(scheduler_file.read_text())["address"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _wait_for_workers(python: str, scheduler_file: Path, count: int) -> None:
    if python == sys.executable:  # this environment has Dask: no need for a new process
        with _client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(count, timeout=START_TIMEOUT_SECONDS)
        return
    code = (
        "import sys; from distributed import Client\n"
        "with Client(scheduler_file=sys.argv[1], timeout=60) as client:\n"
        f"    client.wait_for_workers({count}, timeout={START_TIMEOUT_SECONDS})\n"
    )
    subprocess.run(
        [python, "-c", code, str(scheduler_file)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=START_TIMEOUT_SECONDS + 30,
    )


@contextmanager
def running_dask_cluster(
    folder: Path,
    python: str = sys.executable,
    workers: int = 2,
    threads: int = 2,
    *,
    nanny: bool = True,
) -> Iterator[DaskCluster]:
    """Run ``dask scheduler`` and ``workers`` ``dask worker`` processes (each with
    ``threads`` threads) from ``python``'s environment, in ``folder``, with the
    :data:`~covalent_plugin_testing.dask_cluster.QUIET_DASK_SETTINGS` the environment
    does not set. With ``nanny=False`` each worker runs without the nanny process that
    would restart it if it died (``--no-nanny``): one process per worker, not two."""
    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    env = QUIET_DASK_SETTINGS | dict(os.environ)
    with ExitStack() as stack:
        log = stack.enter_context((folder / "scheduler.log").open("w"))
        scheduler = subprocess.Popen(
            [python, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        stack.callback(_stop, scheduler)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        # The scheduler creates its file, then writes it: wait until it holds JSON.
        while (address := _address_in(scheduler_file)) is None:
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start:\n{log.name}")
            time.sleep(0.1)
        cluster = DaskCluster(address=address, folder=folder)
        for index in range(workers):
            home = folder / f"worker-{index}"
            (home / "home").mkdir(parents=True, exist_ok=True)
            worker_log = stack.enter_context((home / "worker.log").open("w"))
            worker = subprocess.Popen(
                [python, "-m", "distributed.cli.dask_worker", address,
                 "--nthreads", str(threads), "--nworkers", "1", "--name", f"worker-{index}",
                 "--local-directory", str(home), "--host", "127.0.0.1", "--no-dashboard",
                 *([] if nanny else ["--no-nanny"])],
                cwd=home,
                env={**env, "HOME": str(home / "home")},
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            stack.callback(_stop, worker)
            cluster.workers.append(worker)
        _wait_for_workers(python, scheduler_file, workers)
        yield cluster
