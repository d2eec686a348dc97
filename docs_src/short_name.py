"""Choose executors by short name: the server builds them from its configuration.

``"async_timing"`` is the module name of ``timing_executor.async_timing``; the
server makes an ``AsyncTimingExecutor`` from the plugin's defaults and the
``[executors.async_timing]`` section of its ``covalent.conf``.
"""

from pathlib import Path

import covalent as ct


@ct.electron(executor="async_timing")
def add(x, y):
    return x + y


@ct.electron(executor="async_timing")
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
    records = Path(ct.get_config("executors.async_timing.timing_filepath"))
    for line in records.read_text().splitlines():
        if dispatch_id in line:
            print(line)
