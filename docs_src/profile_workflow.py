"""Dispatch a four-step workflow whose tasks are timed, for the report command.

Run it with ``python profile_workflow.py SIZE`` while a Covalent server runs
(``covalent start``) on a machine where the ``timing-executor`` package is
installed. Each run appends one JSON Lines record per task to ``timing.jsonl``
in this folder.
"""

import random
import sys
import time

import covalent as ct
from covalent.executor import TimingExecutor

timing = TimingExecutor("timing.jsonl", record_format="jsonl")


@ct.electron(executor=timing)
def make_numbers(size):
    generator = random.Random(0)
    return [generator.random() for _ in range(size)]


@ct.electron(executor=timing)
def sort_numbers(numbers):
    return sorted(numbers)


@ct.electron(executor=timing)
def wait_for_data():
    time.sleep(0.2)  # stands in for waiting on a disk or a network
    return 0.0


@ct.electron(executor=timing)
def median(numbers, offset):
    return numbers[len(numbers) // 2] + offset


@ct.lattice
def workflow(size):
    numbers = make_numbers(size)
    ordered = sort_numbers(numbers)
    return median(ordered, wait_for_data())


if __name__ == "__main__":
    dispatch_id = ct.dispatch(workflow)(int(sys.argv[1]))
    result = ct.get_result(dispatch_id, wait=True)
    print(f"{dispatch_id} {result.status}")
