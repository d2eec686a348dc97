"""The how-to's advice on short names: edit ``[executors.timing]`` in the server's
``covalent.conf``, run ``covalent restart``, and the next dispatch uses the new values.

This test starts a server of its own (in its own home folder), since it edits that
server's configuration and restarts it.
"""

import json
import subprocess

import pytest
import toml

from tests.covalent_server import covalent_command, run_client, running_server
from tests.workflows import client_code

pytestmark = pytest.mark.server


def dispatch_by_short_name(server) -> str:
    """Dispatch the add/multiply workflow with ``executor="timing"`` from a fresh client."""
    done = run_client(server, client_code("timing"))
    assert done.returncode == 0, done.stderr
    status, dispatch_id = done.stdout.split()
    assert status == "COMPLETED"
    return dispatch_id


def test_an_edited_executor_section_takes_effect_after_covalent_restart(tmp_path):
    home = tmp_path / "home"
    with running_server(home) as server:
        first = dispatch_by_short_name(server)
        default_file = home / ".cache" / "covalent" / "timing.log"
        assert first in default_file.read_text()

        config_file = home / ".config" / "covalent" / "covalent.conf"
        edited = tmp_path / "edited.jsonl"
        config = toml.load(config_file)
        config["executors"]["timing"] = {"timing_filepath": str(edited), "record_format": "jsonl"}
        config_file.write_text(toml.dumps(config))
        restarted = subprocess.run(
            [covalent_command(), "restart"],
            env=server.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr

        second = dispatch_by_short_name(server)
        records = [json.loads(line) for line in edited.read_text().splitlines()]
        assert [record["dispatch_id"] for record in records] == [second, second]
        assert sorted(record["node_name"] for record in records) == ["add", "multiply"]
        assert second not in default_file.read_text()
