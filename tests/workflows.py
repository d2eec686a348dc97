"""The how-to page's add/multiply workflow, built for any executor."""

import json
from pathlib import Path

import covalent as ct


def add_multiply_workflow(executor):
    """Return ``workflow(x, y) = y * (x + y)`` whose two electrons use ``executor``."""

    @ct.electron(executor=executor)
    def add(x, y):
        return x + y

    @ct.electron(executor=executor)
    def multiply(x, y):
        return x * y

    @ct.lattice
    def workflow(x, y):
        r1 = add(x, y)
        return multiply(y, r1)

    return workflow


def failing_workflow(executor):
    """Return a one-electron workflow whose task raises ``ValueError('bad input: 7')``."""

    @ct.electron(executor=executor)
    def check(x):
        raise ValueError(f"bad input: {x}")

    @ct.lattice
    def workflow(x):
        return check(x)

    return workflow


def client_code(executor: str) -> str:
    """Code for a fresh client: dispatch the add/multiply workflow, print status and id."""
    return (
        "from tests.workflows import add_multiply_workflow, dispatch_and_wait\n"
        f"result = dispatch_and_wait(add_multiply_workflow({executor!r}), 1, 2)\n"
        "print(result.status, result.dispatch_id)\n"
    )


def dispatch_and_wait(workflow, *args):
    """Dispatch ``workflow(*args)`` to the configured server and return its finished result."""
    dispatch_id = ct.dispatch(workflow)(*args)
    return ct.get_result(dispatch_id, wait=True)


def records(executor, dispatch_id: str) -> dict[int, dict]:
    """The JSON Lines records of one dispatch in ``executor``'s file, by node id."""
    lines = Path(executor.timing_filepath).read_text().splitlines()
    runs = [json.loads(line) for line in lines]
    return {run["node_id"]: run for run in runs if run["dispatch_id"] == dispatch_id}


def error_of(result, name: str) -> str:
    """What node ``name`` says went wrong: its stderr (a ``TaskRuntimeError``'s
    report), else its error."""
    node = result.get_node_result(node_ids_by_name(result)[name])
    return node["stderr"] or node["error"] or ""


def node_ids_by_name(result) -> dict[str, int]:
    """Map each electron name of a finished dispatch to its node id."""
    graph = result.lattice.transport_graph
    return {graph.get_node_value(n, "name"): n for n in graph._graph.nodes}


MISBEHAVING = ("prints", "prints_bytes", "exits", "exits_hard", "segfaults", "raises")


def misbehaving_workflow(executor, tasks=MISBEHAVING):
    """Return a workflow of independent ``tasks`` that print, exit, crash or raise."""

    @ct.electron(executor=executor)
    def prints():
        import ctypes
        import os
        import subprocess
        import sys

        print("MARKER print")
        print("MARKER print to stderr", file=sys.stderr)
        os.write(1, b"MARKER file descriptor 1\n")
        ctypes.CDLL(None).puts(b"MARKER C puts")
        subprocess.run(["echo", "MARKER subprocess"], check=True)
        return "printed"

    @ct.electron(executor=executor)
    def prints_bytes():
        import sys

        sys.stdout.buffer.write(b"MARKER not UTF-8: \xff\xfe\n")
        sys.stderr.buffer.write(b"MARKER not UTF-8: \xc3\n")
        return "printed"

    @ct.electron(executor=executor)
    def exits():
        import sys

        sys.exit(3)

    @ct.electron(executor=executor)
    def exits_hard():
        import os

        os._exit(4)

    @ct.electron(executor=executor)
    def segfaults():
        import ctypes

        ctypes.string_at(0)

    @ct.electron(executor=executor)
    def raises():
        raise ValueError("bad value 7")

    electrons = {
        "prints": prints,
        "prints_bytes": prints_bytes,
        "exits": exits,
        "exits_hard": exits_hard,
        "segfaults": segfaults,
        "raises": raises,
    }

    @ct.lattice
    def workflow():
        return [electrons[name]() for name in tasks]

    return workflow


def assert_misbehaviour_reported(result) -> None:
    """Each node of a finished :func:`misbehaving_workflow` says what its task did:
    output in its stdout and stderr, exits, crashes and errors in its stderr."""
    nodes = {name: result.get_node_result(n) for name, n in node_ids_by_name(result).items()}
    assert str(nodes["prints"]["status"]) == "COMPLETED"
    assert sorted(nodes["prints"]["stdout"].splitlines()) == [
        "MARKER C puts",
        "MARKER file descriptor 1",
        "MARKER print",
        "MARKER subprocess",
    ]
    assert nodes["prints"]["stderr"] == "MARKER print to stderr\n"
    # Bytes that are not UTF-8 become U+FFFD; `local` keeps them, and the result can't be read.
    assert nodes["prints_bytes"]["stdout"] == "MARKER not UTF-8: \ufffd\ufffd\n"
    assert nodes["prints_bytes"]["stderr"] == "MARKER not UTF-8: \ufffd\n"
    assert ", in exits\n" in nodes["exits"]["stderr"]
    assert nodes["exits"]["stderr"].endswith("SystemExit: 3\n")
    assert nodes["exits_hard"]["stderr"].startswith("exit code 4: the task's process exited")
    assert nodes["segfaults"]["stderr"].startswith("SIGSEGV: the task's process was killed")
    assert ", in raises\n" in nodes["raises"]["stderr"]
    assert nodes["raises"]["stderr"].endswith("ValueError: bad value 7\n")


def assert_each_burn_recorded_its_cpu_time(result, executor, tasks: int) -> None:
    """A finished ``benchmarks.tasks.cpu_workflow`` dispatch of ``tasks`` burns: each
    burn met the others at the barrier, and its record holds the CPU time it measured
    itself (within 3 %)."""
    runs = records(executor, result.dispatch_id)
    graph = result.lattice.transport_graph
    burns = [n for n in graph._graph.nodes if graph.get_node_value(n, "name") == "burn"]
    assert len(burns) == tasks
    for node in burns:
        truth, _, _, met = graph.get_node_value(node, "output").get_deserialized()
        assert met
        assert abs(runs[node]["cpu_seconds"] / truth - 1) <= 0.03, (runs[node], truth)


def sleeping_workflow(executor, marker_dir: str, tasks: int = 1, seconds: float = 60):
    """Return ``workflow()``: ``tasks`` naps, then a task that needs them all.

    Each nap writes its process id to a file in ``marker_dir`` when it starts.
    """

    @ct.electron(executor=executor)
    def nap(index):
        import os
        import time
        from pathlib import Path

        Path(marker_dir, str(index)).write_text(str(os.getpid()))
        time.sleep(seconds)

    @ct.electron(executor=executor)
    def after(naps):
        return "after"

    @ct.lattice
    def workflow():
        return after([nap(index) for index in range(tasks)])

    return workflow


def big_result_workflow(executor, size: int):
    """Return ``workflow()`` whose task burns CPU, then returns ``size`` numbers.

    The task returns ``(its own CPU seconds, numbers)``; Covalent then spends more
    CPU time packing the numbers (``str()`` of the list) than the task did.
    """

    @ct.electron(executor=executor)
    def burn_then_return_numbers():
        import time

        start = time.process_time()
        while time.process_time() - start < 0.2:
            pass
        numbers = [float(n) for n in range(size)]
        return time.process_time() - start, numbers

    @ct.lattice
    def workflow():
        return burn_then_return_numbers()

    return workflow


def covalent_folders_workflow(executor):
    """Return ``workflow()`` whose task says where its Covalent keeps what it makes
    when it is imported: ``{"config": COVALENT_CONFIG_DIR, setting: folder, ...}``."""

    @ct.electron(executor=executor)
    def covalent_folders():
        import os

        from covalent._shared_files.config import get_config

        settings = ("sdk.log_dir", "sdk.executor_dir", "sdk.dispatch_cache_dir")
        folders = {name: get_config(name) for name in settings}
        folders["dispatcher.db_path"] = os.path.dirname(get_config("dispatcher.db_path"))
        return {"config": os.environ["COVALENT_CONFIG_DIR"], **folders}

    @ct.lattice
    def workflow():
        return covalent_folders()

    return workflow


def assert_inside_the_config_folder(folders: dict) -> Path:
    """Every folder of :func:`covalent_folders_workflow`'s result is inside its
    ``config`` folder; return that folder."""
    config = Path(folders["config"])
    inside = {name: Path(path).is_relative_to(config) for name, path in folders.items()}
    outside = {name: folders[name] for name, is_inside in inside.items() if not is_inside}
    assert not outside, f"Covalent's folders outside {config}: {outside}"
    return config
