"""Workflows the benchmark dispatches, built inside functions.

Covalent pickles functions defined inside a function by value, so the server
runs them without importing this module. Every task reports its own clock
readings: the server staggers task starts, so only the tasks know when they ran.
"""

import covalent as ct


def cpu_workflow(
    executor, tasks: int, cpu_seconds: float, barrier_dir: str, barrier_timeout: float = 30.0
):
    """``tasks`` electrons that meet at a barrier, then each burn ``cpu_seconds`` of CPU.

    The barrier: each task creates ``barrier_dir/ready-{index}`` and waits until
    ``tasks`` such files exist (or ``barrier_timeout`` seconds pass), so the burns
    overlap even though the server staggers task starts. ``barrier_dir`` must be
    a fresh folder for every dispatch.

    Each returns (true CPU seconds, burn start, burn end, barrier met). The truth is
    ``time.thread_time()`` counted from the first line of the function body, as the
    executors count around the call, so it includes the barrier's few polls; the
    start and end are Unix times of the burn alone.
    """

    @ct.electron(executor=executor)
    def burn(index):
        import time
        from pathlib import Path

        cpu_start = time.thread_time()
        folder = Path(barrier_dir)
        (folder / f"ready-{index}").touch()
        deadline = time.monotonic() + barrier_timeout
        while not (met := len(list(folder.glob("ready-*"))) >= tasks):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        started_at, burn_start = time.time(), time.thread_time()
        while time.thread_time() - burn_start < cpu_seconds:
            sum(range(1000))
        return time.thread_time() - cpu_start, started_at, time.time(), met

    @ct.lattice
    def workflow(tasks):
        return [burn(i) for i in range(tasks)]

    return workflow


def sleep_workflow(executor, tasks: int, seconds: float):
    """``tasks`` electrons that sleep ``seconds`` and return their (start, end) Unix times."""

    @ct.electron(executor=executor)
    def nap(index):
        import time

        start = time.time()
        time.sleep(seconds)
        return start, time.time()

    @ct.lattice
    def workflow(tasks):
        return [nap(i) for i in range(tasks)]

    return workflow


def marked_sleep_workflow(executor, tasks: int, seconds: float, marker_dir: str):
    """Like :func:`sleep_workflow`, but each task first creates a file in ``marker_dir``."""

    @ct.electron(executor=executor)
    def long_task(index):
        import time
        from pathlib import Path

        (Path(marker_dir) / f"started-{index}").touch()
        time.sleep(seconds)
        return index

    @ct.lattice
    def workflow(tasks):
        return [long_task(i) for i in range(tasks)]

    return workflow


def clock_workflow(executor):
    """One electron that returns the Unix time it started."""

    @ct.electron(executor=executor)
    def clock():
        import time

        return time.time()

    @ct.lattice
    def workflow():
        return clock()

    return workflow


def trivial_workflow(executor, tasks: int):
    """``tasks`` electrons that each return their argument."""

    @ct.electron(executor=executor)
    def identity(index):
        return index

    @ct.lattice
    def workflow(tasks):
        return [identity(i) for i in range(tasks)]

    return workflow


def electron_outputs(result, name: str) -> dict[int, object]:
    """Map node id to output for every electron called ``name`` in a finished dispatch."""
    graph = result.lattice.transport_graph
    return {
        node: graph.get_node_value(node, "output").get_deserialized()
        for node in graph._graph.nodes
        if graph.get_node_value(node, "name") == name
    }
