"""Tests of the small plugin (``small_timing.py``) on a real Covalent server."""

from pathlib import Path

import covalent as ct


def add(x, y):
    return x + y


def test_a_task_runs_and_appends_a_record(covalent_server):
    @ct.lattice
    def workflow(x, y):
        return ct.electron(add, executor="small_timing")(x, y)

    dispatch_id = ct.dispatch(workflow)(1, 2)
    result = ct.get_result(dispatch_id, wait=True)
    assert str(result.status) == "COMPLETED"
    assert result.result == 3
    # By short name, the server builds the executor from its defaults:
    # timing.log in the server's home folder.
    records = (covalent_server.home / "timing.log").read_text()
    assert f"Node 0 in dispatch {dispatch_id} took " in records


def test_an_instance_appends_to_its_own_file(covalent_server, tmp_path):
    from covalent.executor import SmallTimingExecutor

    records = tmp_path / "records.log"

    @ct.lattice
    def workflow(x, y):
        return ct.electron(add, executor=SmallTimingExecutor(records))(x, y)

    dispatch_id = ct.dispatch(workflow)(2, 3)
    assert ct.get_result(dispatch_id, wait=True).result == 5
    (line,) = Path(records).read_text().splitlines()
    assert line.startswith(f"Node 0 in dispatch {dispatch_id} took ")
