"""The README's hand-run example works as printed against a real server."""

import contextlib
import io
import re
from pathlib import Path

import pytest

from timing_executor.timing import DEFAULT_TIMING_FILEPATH

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.server
def test_readme_example_dispatches_and_records(covalent_server, tmp_path, monkeypatch):
    (example,) = python_blocks(README.read_text())
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example, str(README), "exec"), {"__name__": "__main__"})
    first, *records = printed.getvalue().splitlines()
    assert first == "6"
    (add_record,) = [line for line in records if line]
    assert re.fullmatch(r"Node \d+ in dispatch \S+ took \d+\.\d{6}s of CPU time\.", add_record)
    dispatch_id = add_record.split()[4]
    assert dispatch_id in Path(DEFAULT_TIMING_FILEPATH).read_text()
    assert (tmp_path / "timing.log").read_text() == add_record + "\n"
