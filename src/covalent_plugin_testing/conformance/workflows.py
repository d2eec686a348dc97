"""The workflows the cases dispatch, each built for one executor."""

from __future__ import annotations

from typing import Any

from covalent_plugin_testing.conformance import tasks

ARGUMENT_MB = 20
RESULT_MB = 50
MANY = 50


def _electron(task: Any, executor: Any) -> Any:
    import covalent as ct

    return ct.electron(task, executor=executor)


def _lattice(function: Any) -> Any:
    import covalent as ct

    return ct.lattice(function)


def add_multiply(executor: Any) -> Any:
    """The seed's workflow: ``workflow(x, y) = y * (x + y)``."""
    add, multiply = _electron(tasks.add, executor), _electron(tasks.multiply, executor)

    def workflow(x, y):
        return multiply(y, add(x, y))

    return _lattice(workflow)


def one_task(executor: Any, task: Any, *args: Any) -> Any:
    """A workflow of one electron: ``task(*args)``."""
    electron = _electron(task, executor)

    def workflow():
        return electron(*args)

    return _lattice(workflow)


def arguments(executor: Any) -> Any:
    """Positional and keyword arguments; a 20 MB argument and a 50 MB result."""
    echo = _electron(tasks.echo_arguments, executor)
    big = _electron(tasks.big_result, executor)
    payload = tasks.blob(ARGUMENT_MB)

    def workflow():
        return (
            echo(1, "two", [3.0], four=4, five={"six": 6}),
            big(payload, RESULT_MB),
        )

    return _lattice(workflow)


def output(executor: Any, token: str) -> Any:
    """Tasks that print from Python, from a subprocess and from C."""
    printers = [
        _electron(task, executor)
        for task in (tasks.prints_from_python, tasks.prints_from_a_subprocess, tasks.prints_from_c)
    ]

    def workflow():
        return [printer(token) for printer in printers]

    return _lattice(workflow)


def misc(executor: Any, runs: str, pid_file: str) -> Any:
    """A task that raises, one whose result cannot be pickled, two equal calls, and
    one that leaves a child in a new session."""
    raises = _electron(tasks.raises, executor)
    unpicklable = _electron(tasks.returns_something_unpicklable, executor)
    counts = _electron(tasks.counts_its_run, executor)
    starts = _electron(tasks.starts_a_child_in_a_new_session, executor)

    def workflow():
        return [raises("misc"), unpicklable(), counts(runs), counts(runs), starts(pid_file)]

    return _lattice(workflow)


def exiting(executor: Any, task: Any) -> Any:
    """``task`` (which ends its process) beside a task that must complete."""
    ending, sibling = _electron(task, executor), _electron(tasks.square, executor)

    def workflow():
        return ending(), sibling(7)

    return _lattice(workflow)


def many(executor: Any) -> Any:
    """:data:`MANY` independent tasks."""
    square = _electron(tasks.square, executor)

    def workflow():
        return [square(index) for index in range(MANY)]

    return _lattice(workflow)


def cancelled(executor: Any, folder: str, limit: float) -> Any:
    """A task with a heartbeat, then one that needs it (and marks that it ran)."""
    beat, after = _electron(tasks.heartbeat, executor), _electron(tasks.after, executor)

    def workflow():
        return after(beat(folder, limit), f"{folder}/after-ran")

    return _lattice(workflow)
