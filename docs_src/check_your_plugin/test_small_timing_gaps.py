"""The small plugin again, its gaps declared: each is an expected failure, and
one that starts to pass fails the run."""

import pytest
from covalent_plugin_testing.conformance import ExecutorConformance

IN_THREAD = "the task runs in a thread of the Covalent server's own process"
TO_THE_LOG = f"{IN_THREAD}: its output goes to the server's log"
KNOWN_GAPS = {
    "test_a_task_that_raises_fails_its_node_with_type_and_traceback": (
        "the node's error is the exception's message only"
    ),
    "test_python_output_reaches_the_node": TO_THE_LOG,
    "test_output_of_a_subprocess_reaches_the_node": TO_THE_LOG,
    "test_output_of_c_code_reaches_the_node": TO_THE_LOG,
    "test_output_stays_out_of_the_server_log": TO_THE_LOG,
    "test_a_child_in_a_new_session_does_not_outlive_its_node": (
        f"{IN_THREAD}, which lives on, and so does the child"
    ),
    "test_cancel_stops_a_running_task": f"{IN_THREAD}: nothing stops it",
    "test_sys_exit_fails_only_its_node": f"{IN_THREAD}: it ends the server",
    "test_os_exit_fails_only_its_node": f"{IN_THREAD}: it ends the server",
    "test_a_segfault_fails_only_its_node": f"{IN_THREAD}: it ends the server",
}


class TestSmallTimingWithItsGaps(ExecutorConformance):
    known_gaps = KNOWN_GAPS

    @pytest.fixture
    def executor(self):
        return "small_timing"
