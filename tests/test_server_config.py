"""The how-to's advice on short names: an edited ``[executors.timing]`` section of the
server's ``covalent.conf`` takes effect for the next task, without a restart, and a
key set to "" gets its default back. And, by short name, a record that cannot be
written costs no result.

This test starts a server of its own (in its own home folder), since it edits that
server's configuration. The key set to "" is written by a client that imported
covalent before the edit, so no import writes the default back before the task.
"""

import json

import pytest
import toml

from covalent_plugin_testing.server import run_client, running_server
from tests.workflows import client_code

pytestmark = pytest.mark.server


def dispatch_by_short_name(server) -> str:
    """Dispatch the add/multiply workflow with ``executor="timing"`` from a fresh client."""
    done = run_client(server, client_code("timing"))
    assert done.returncode == 0, done.stderr
    status, dispatch_id = done.stdout.split()
    assert status == "COMPLETED"
    return dispatch_id


UNRECORDABLE = """
import json
from tests.workflows import add_multiply_workflow, dispatch_and_wait, node_ids_by_name
result = dispatch_and_wait(add_multiply_workflow("async_timing"), 1, 2)
node = result.get_node_result(node_ids_by_name(result)["add"])
print(json.dumps([str(result.status), result.result, node["stderr"]]))
"""


#: A client that has imported covalent (which merges the defaults into the file)
#: sets ``timing_filepath = ""`` and then dispatches: the server reads ``""`` from
#: the file, as it would after any edit, and no import puts the default back.
EMPTY_THEN_DISPATCH = """
import os
from pathlib import Path
import toml
from tests.workflows import add_multiply_workflow, dispatch_and_wait
config_file = Path(os.environ["COVALENT_CONFIG_DIR"]) / "covalent.conf"
config = toml.load(config_file)
config["executors"]["timing"]["timing_filepath"] = ""
config_file.write_text(toml.dumps(config))
result = dispatch_and_wait(add_multiply_workflow("timing"), 1, 2)
now = toml.load(config_file)["executors"]["timing"]["timing_filepath"]
print(result.status, result.dispatch_id, repr(now))
"""


def test_an_edited_executor_section_takes_effect_for_the_next_task(tmp_path):
    home = tmp_path / "home"
    config_file = home / ".config" / "covalent" / "covalent.conf"
    config_file.parent.mkdir(parents=True)
    # Covalent keeps what a section already holds: async_timing records to a full disk.
    config_file.write_text(
        toml.dumps({"executors": {"async_timing": {"timing_filepath": "/dev/full"}}})
    )
    with running_server(home) as server:
        first = dispatch_by_short_name(server)
        default_file = home / ".cache" / "covalent" / "timing.log"
        assert first in default_file.read_text()

        unrecorded = run_client(server, UNRECORDABLE)
        assert unrecorded.returncode == 0, unrecorded.stderr
        status, result, stderr = json.loads(unrecorded.stdout)
        assert (status, result) == ("COMPLETED", 6)
        assert "could not append this task's record to /dev/full" in stderr

        edited = tmp_path / "edited.jsonl"
        config = toml.load(config_file)
        config["executors"]["timing"] = {"timing_filepath": str(edited), "record_format": "jsonl"}
        config_file.write_text(toml.dumps(config))
        second = dispatch_by_short_name(server)  # no restart
        records = [json.loads(line) for line in edited.read_text().splitlines()]
        assert [record["dispatch_id"] for record in records] == [second, second]
        assert sorted(record["node_name"] for record in records) == ["add", "multiply"]
        assert second not in default_file.read_text()

        emptied = run_client(server, EMPTY_THEN_DISPATCH)
        assert emptied.returncode == 0, emptied.stderr
        status, third, still_empty = emptied.stdout.split()
        assert status == "COMPLETED", emptied.stdout
        assert still_empty == "''"  # no import of covalent put the default back
        assert third in default_file.read_text() and third not in edited.read_text()
