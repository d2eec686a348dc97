"""Dispatch a two-step workflow whose tasks run on a TimingExecutor instance.

Run it with ``python workflow.py`` while a Covalent server runs
(``covalent start``) on a machine where the ``timing-executor`` package is
installed.
"""

from pathlib import Path

import covalent as ct
from covalent.executor import TimingExecutor

# A file, or an existing directory to hold timing.log:
timing = TimingExecutor("timing.log")


@ct.electron(executor=timing)
def add(x, y):
    return x + y


@ct.electron(executor=timing)
def multiply(x, y):
    return x * y


@ct.lattice
def workflow(x, y):
    r1 = add(x, y)
    return multiply(y, r1)


if __name__ == "__main__":
    dispatch_id = ct.dispatch(workflow)(1, 2)
    result = ct.get_result(dispatch_id, wait=True)
    print(f"{result.status}: {result.result}")
    print(Path(timing.timing_filepath).read_text(), end="")
