"""Unit tests of AsyncTimingExecutor.run(), awaited on a real event loop (no server)."""

import asyncio
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from covalent._shared_files.exceptions import TaskRuntimeError

from tests.test_timing import METADATA, TEXT_RECORD, spin
from timing_executor.async_timing import AsyncTimingExecutor


def wait_for_all(folder: str, name: str, count: int) -> float:
    """Leave a file in ``folder``, wait until ``count`` files are there; return when."""
    Path(folder, name).touch()
    deadline = time.monotonic() + 30
    while len(list(Path(folder).iterdir())) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(Path(folder).iterdir()))} of {count}")
        time.sleep(0.01)
    return time.time()


@pytest.mark.asyncio
async def test_run_returns_result_and_appends_the_sentence(tmp_path):
    log = tmp_path / "timing.log"
    assert await AsyncTimingExecutor(log).run(lambda x, y: x + y, [1, 2], {}, METADATA) == 3
    assert TEXT_RECORD.fullmatch(log.read_text().rstrip("\n")).group(1, 2) == ("3", "d-1")


@pytest.mark.asyncio
async def test_concurrent_cpu_bound_tasks_each_get_their_own_time(tmp_path):
    executor = AsyncTimingExecutor(tmp_path, record_format="jsonl")
    truths = await asyncio.gather(
        *(executor.run(spin, [0.3], {}, {"dispatch_id": "d", "node_id": n}) for n in range(4))
    )
    lines = (tmp_path / "timing.log").read_text().splitlines()
    records = {r["node_id"]: r for r in map(json.loads, lines)}
    for node_id, truth in enumerate(truths):
        assert records[node_id]["cpu_seconds"] / truth == pytest.approx(1.0, abs=0.03)


@pytest.mark.asyncio
async def test_twenty_blocking_tasks_run_at_once_without_blocking_the_loop(tmp_path):
    """Each task blocks until all 20 have started; the event loop ticks meanwhile."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    ticks = []

    async def heartbeat():
        while len(ticks) < 1000 and len(list(barrier.iterdir())) < 20:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    executor = AsyncTimingExecutor(tmp_path / "records.log")
    runs = [
        executor.run(wait_for_all, [str(barrier), str(n), 20], {}, {**METADATA, "node_id": n})
        for n in range(20)
    ]
    _, *passed_at = await asyncio.gather(heartbeat(), *runs)
    assert max(passed_at) - min(passed_at) < 5
    assert len(ticks) >= 10


@pytest.mark.asyncio
async def test_does_not_use_the_loops_default_thread_pool(tmp_path):
    """A busy default pool (as in the server) must not hold the executor's tasks back."""
    loop = asyncio.get_running_loop()
    default_pool = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(default_pool)
    release = threading.Event()
    blocker = loop.run_in_executor(None, release.wait, 30)
    try:
        result = await asyncio.wait_for(
            AsyncTimingExecutor(tmp_path).run(lambda: "ran", [], {}, METADATA), timeout=20
        )
        assert result == "ran"
    finally:
        release.set()
        await blocker


@pytest.mark.asyncio
async def test_failing_task_raises_covalents_error_with_its_traceback_and_is_recorded(tmp_path):
    def fail():
        raise ValueError("bad input: 7")

    with pytest.raises(TaskRuntimeError) as raised:
        await AsyncTimingExecutor(tmp_path).run(fail, [], {}, METADATA)
    assert "Traceback" in str(raised.value) and "ValueError: bad input: 7" in str(raised.value)
    assert re.fullmatch(
        r"Node 3 in dispatch d-1 failed \(ValueError\) after \d+\.\d{6}s of CPU time\.\n",
        (tmp_path / "timing.log").read_text(),
    )


@pytest.mark.asyncio
async def test_metadata_without_ids_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="task_metadata has no 'node_id'"):
        await AsyncTimingExecutor(tmp_path).run(print, [], {}, {"dispatch_id": "d"})


def test_unwritable_path_fails_at_construction_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=re.escape(str(blocker / "x.log"))):
        AsyncTimingExecutor(blocker / "x.log")


def test_to_dict_is_json_and_from_dict_round_trips(tmp_path):
    executor = AsyncTimingExecutor(tmp_path)
    data = json.loads(json.dumps(executor.to_dict()))
    assert data["short_name"] == "async_timing"
    assert AsyncTimingExecutor().from_dict(data).to_dict() == executor.to_dict()
