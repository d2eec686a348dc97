"""The guide's smallest plugin against the conformance suite."""

import pytest
from covalent_plugin_testing.conformance import ExecutorConformance


class TestSmallTiming(ExecutorConformance):
    @pytest.fixture
    def executor(self):
        return "small_timing"
