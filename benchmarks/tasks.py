"""Workflows the benchmark dispatches, built inside functions.

Covalent pickles functions defined inside a function by value, so the server
runs them without importing this module. Every task reports its own clock
readings: the server staggers task starts, so only the tasks know when they ran.
"""

import covalent as ct


def cpu_workflow(executor, tasks: int, cpu_seconds: float):
    """``tasks`` electrons that each burn ``cpu_seconds`` of their own thread's CPU.

    Each returns the CPU time it measured itself with ``time.thread_time()`` (the
    truth), and the Unix times it started and ended.
    """

    @ct.electron(executor=executor)
    def burn(index):
        import time

        started_at = time.time()
        start = time.thread_time()
        while time.thread_time() - start < cpu_seconds:
            sum(range(1000))
        return time.thread_time() - start, started_at, time.time()

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
