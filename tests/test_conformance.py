"""The conformance suite (``covalent_plugin_testing.conformance``) against this
package's executors, the guide's small plugin and Covalent's own ``local``."""

import pytest

from covalent_plugin_testing.conformance import ExecutorConformance

pytestmark = pytest.mark.server


class TestTiming(ExecutorConformance):
    @pytest.fixture
    def executor(self):
        return "timing"


class TestAsyncTiming(ExecutorConformance):
    @pytest.fixture
    def executor(self):
        return "async_timing"


class TestLocal(ExecutorConformance):
    """Covalent's own executor, as the reference."""

    @pytest.fixture
    def executor(self):
        return "local"
