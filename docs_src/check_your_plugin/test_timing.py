"""The fix: each task in a process of its own, the guide's TimingExecutor."""

import pytest
from covalent_plugin_testing.conformance import ExecutorConformance


class TestTiming(ExecutorConformance):
    @pytest.fixture
    def executor(self, tmp_path):
        from covalent.executor import TimingExecutor

        return TimingExecutor(tmp_path / "timing.log")
