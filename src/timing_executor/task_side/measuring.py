"""Measuring where a task runs: the CPU clock and the stopwatch that times the
user's own function inside Covalent's wrapper."""

# --8<-- [start:measuring]
import functools
import resource
import time
from collections.abc import Callable
from functools import partial
from typing import Any


def process_cpu_seconds() -> float:
    """CPU time of this process and of the subprocesses it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Stopwatch:
    """Measures the calls of the functions it wraps: CPU time and wall time.

    ``cpu_clock`` reads the CPU time to count: by default this process's.
    """

    def __init__(
        self, cpu_clock: Callable[[], float] = process_cpu_seconds
    ) -> None:
        self.cpu_clock = cpu_clock
        self.started_at = time.time()
        self.cpu_seconds = self.wall_seconds = 0.0

    def wrap(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.started_at = time.time()
            cpu_start, wall_start = self.cpu_clock(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu_seconds += self.cpu_clock() - cpu_start
                self.wall_seconds += time.perf_counter() - wall_start

        return timed


class TimedSerializedFunction:
    """Stands in for the user's serialized function inside Covalent's wrapper.

    The wrapper asks it for the function (``get_deserialized()``) and gets it
    wrapped by the stopwatch, so the record holds the time of the user's own
    function, not of Covalent unpacking its inputs and packing its result.
    """

    def __init__(self, serialized: Any, stopwatch: Stopwatch) -> None:
        self.serialized, self.stopwatch = serialized, stopwatch

    def get_deserialized(self) -> Callable:
        return self.stopwatch.wrap(self.serialized.get_deserialized())


def timed_task(function: Callable, stopwatch: Stopwatch) -> Callable:
    """Time the user's own function, inside Covalent's wrapper when there is one.

    Covalent hands executors ``partial(wrapper_fn, serialized_function, ...)``;
    any other callable (``run()`` called by hand) is timed as a whole.
    """
    wrapped = (
        function.args[0]
        if isinstance(function, partial) and function.args
        else None
    )
    if not hasattr(wrapped, "get_deserialized"):
        return stopwatch.wrap(function)
    timed = TimedSerializedFunction(wrapped, stopwatch)
    return partial(function.func, timed, *function.args[1:], **function.keywords)


# --8<-- [end:measuring]
