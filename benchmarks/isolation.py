"""I, without a server: ways to run a task apart from the caller's process, compared.

For each way: what starting a trivial task and getting its end costs, in
milliseconds; the memory of one task's process while it sleeps (USS: what that
process alone holds; PSS: its share of what it shares with others); and how many
of 3 sleeping tasks fail when a fourth one calls ``os._exit()`` beside them.

- ``thread``: no isolation, the task runs in a thread of the caller (the how-to's
  small plugin). Its ``os._exit`` case runs in a child process, since it ends it.
- ``pool``: a reused ``ProcessPoolExecutor`` of forked workers (Covalent's
  ``local`` executor).
- ``spawn``: a fresh interpreter per task, which imports Covalent.
- ``forkserver``: ``multiprocessing``'s fork server with Covalent preloaded, one
  process per task.
- ``launcher``: TimingExecutor's launcher, one forked process per task.

The tasks live in a module that imports nothing heavy (``tiny_tasks``), so every
way pays the same small price to import them where they run.
"""

import multiprocessing
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cloudpickle
import psutil

from benchmarks.cases import CaseResult
from benchmarks.tiny_tasks import exit_hard, nap_and_mark, nothing
from timing_executor.timing import TimingExecutor

RUN_PICKLED = "import covalent, pickle, sys; pickle.loads(bytes.fromhex(sys.argv[1]))()"


class Way:
    """One way to run tasks: ``start`` a task, then ``wait`` for it (True: it ended well)."""

    def start(self, function: Callable, *args) -> object:
        raise NotImplementedError

    def wait(self, handle: object) -> bool:
        raise NotImplementedError


class Thread(Way):
    def start(self, function, *args):
        thread = threading.Thread(target=function, args=args)
        thread.start()
        return thread

    def wait(self, handle):
        handle.join()
        return True


class Pool(Way):
    def __init__(self) -> None:
        self.pool = ProcessPoolExecutor(max_workers=4)

    def start(self, function, *args):
        return self.pool.submit(function, *args)

    def wait(self, handle):
        return handle.exception() is None


class Spawn(Way):
    def start(self, function, *args):
        payload = cloudpickle.dumps(lambda: function(*args)).hex()
        return subprocess.Popen([sys.executable, "-c", RUN_PICKLED, payload])

    def wait(self, handle):
        return handle.wait() == 0


class ForkServer(Way):
    def __init__(self) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["covalent"])

    def start(self, function, *args):
        process = self.context.Process(target=function, args=args)
        process.start()
        return process

    def wait(self, handle):
        handle.join()
        return handle.exitcode == 0


class Launcher(Way):
    def __init__(self, folder: Path) -> None:
        self.executor = TimingExecutor(folder / "records.log")

    def start(self, function, *args):
        outcome = {}

        def run() -> None:
            try:
                self.executor.run(function, list(args), {}, {"dispatch_id": "i", "node_id": 0})
                outcome["ok"] = True
            except Exception:
                outcome["ok"] = False

        thread = threading.Thread(target=run)
        thread.start()
        return thread, outcome

    def wait(self, handle):
        thread, outcome = handle
        thread.join()
        return outcome["ok"]


def start_cost_ms(way: Way, calls: int) -> float:
    """Milliseconds to start a trivial task and see it end (the first call not counted)."""
    way.wait(way.start(nothing))
    start = time.perf_counter()
    for _ in range(calls):
        way.wait(way.start(nothing))
    return (time.perf_counter() - start) / calls * 1000


def sleeping_memory_mb(way: Way, folder: Path) -> tuple[float, float]:
    """USS and PSS, in MB, of the process of one sleeping task."""
    name = f"memory-{time.monotonic_ns()}"
    handle = way.start(nap_and_mark, str(folder), name, 2.0)
    marker = folder / name
    while not marker.exists() or not marker.read_text():
        time.sleep(0.01)
    time.sleep(0.2)
    info = psutil.Process(int(marker.read_text())).memory_full_info()
    way.wait(handle)
    return info.uss / 2**20, info.pss / 2**20


THREADS_THEN_EXIT = """
import os, sys, threading, time
from pathlib import Path

def nap(name):
    time.sleep(1)
    Path(sys.argv[1], name + ".done").touch()

for n in range(3):
    threading.Thread(target=nap, args=(f"thread-{n}",)).start()
time.sleep(0.3)
os._exit(4)
"""


def innocents_failed(way: Way, folder: Path) -> int:
    """Of 3 tasks sleeping 1 s, how many did not finish because a 4th called os._exit."""
    names = [f"innocent-{time.monotonic_ns()}-{n}" for n in range(3)]
    if isinstance(way, Thread):  # all in one process, which the exit ends
        subprocess.run([sys.executable, "-c", THREADS_THEN_EXIT, str(folder)], timeout=60)
        time.sleep(1.5)
        names = [f"thread-{n}" for n in range(3)]
    else:
        handles = [way.start(nap_and_mark, str(folder), name, 1.0) for name in names]
        time.sleep(0.3)
        way.wait(way.start(exit_hard))
        for handle in handles:
            way.wait(handle)
    failed = sum(not (folder / f"{name}.done").exists() for name in names)
    for done in folder.glob("thread-*.done"):
        done.unlink()
    return failed


def compare_ways(repetitions: int, workdir: Path, calls: int = 40) -> CaseResult:
    """Every figure of case I, for every way, ``repetitions`` times."""
    out = CaseResult()
    folder = Path(tempfile.mkdtemp(dir=workdir, prefix="I-"))
    ways: dict[str, Way] = {
        "thread": Thread(),
        "pool": Pool(),
        "spawn": Spawn(),
        "forkserver": ForkServer(),
        "launcher": Launcher(folder),
    }
    for rep in range(repetitions):
        for name, way in ways.items():
            cost = start_cost_ms(way, calls if name != "spawn" else max(3, calls // 10))
            out.add("I", name, "start a trivial task and see it end (ms)", cost, rep)
            if name != "thread":
                uss, pss = sleeping_memory_mb(way, folder)
                out.add("I", name, "one sleeping task's process, USS (MB)", uss, rep)
                out.add("I", name, "one sleeping task's process, PSS (MB)", pss, rep)
            if name == "pool":  # a broken pool stays broken: measure on a fresh one
                way = ways["pool"] = Pool()
            failed = innocents_failed(way, folder)
            out.add("I", name, "of 3 tasks, failed by a 4th's os._exit()", failed, rep)
        ways["pool"] = Pool()
    return out
