"""``ExecutorConformance``: inherit it, give an ``executor`` fixture, get every case."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from covalent_plugin_testing.conformance import tasks, workflows
from covalent_plugin_testing.conformance.cancelling import cancel_observed, process_gone
from covalent_plugin_testing.conformance.dispatching import CaseFailure, wait_until
from covalent_plugin_testing.conformance.executors import BadExecutor, checked, described
from covalent_plugin_testing.conformance.harness import Harness, fail, text_of

#: Per test class: None if its executor fixture is sound, else the message.
_verdicts: dict[type, str | None] = {}


class ExecutorConformance:
    """The conformance cases. Subclass it with a test class and define the fixture
    ``executor`` (an executor instance, or a short name); every ``test_`` method is
    one case, run on the kit's real server (``covalent_server``).

    ``known_gaps`` maps case names to the reason the executor lacks that behaviour:
    those cases are expected failures, and one that passes fails the run.
    ``timeout`` bounds every dispatch, ``cancel_limit`` the seconds from
    ``ct.cancel`` until the task has stopped."""

    known_gaps: ClassVar[dict[str, str]] = {}
    timeout: ClassVar[float] = 120.0
    cancel_limit: ClassVar[float] = 10.0

    @pytest.fixture
    def executor(self) -> Any:
        raise BadExecutor("define the fixture executor in your ExecutorConformance subclass")

    @pytest.fixture
    def conformance(
        self, request: pytest.FixtureRequest, covalent_server: Any, tmp_path: Path
    ) -> Harness:
        """The case's harness; checks the executor once per class first, restarts
        a server an earlier case left dead, and marks known gaps."""
        from covalent_plugin_testing.conformance.dispatching import server_answers
        from covalent_plugin_testing.server import restart_server

        owner = type(self)
        first = owner not in _verdicts
        try:
            executor = self._checked_executor(request)
        except BadExecutor as bad:
            _verdicts.setdefault(owner, str(bad))
        else:
            _verdicts.setdefault(owner, None)
        if (verdict := _verdicts[owner]) is not None:
            if first:
                pytest.fail(f"conformance suite: {verdict}", pytrace=False)
            pytest.skip(f"conformance suite: {verdict}")
        if not server_answers(covalent_server.url, timeout=2):
            restart_server(covalent_server)  # an earlier case's task ended it
        name = request.node.originalname
        if name in owner.known_gaps:
            reason = f"known gap: {owner.known_gaps[name]}"
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
        return Harness(
            owner, executor, covalent_server, tmp_path, owner.timeout, owner.cancel_limit
        )

    def _checked_executor(self, request: pytest.FixtureRequest) -> Any:
        unknown = sorted(set(self.known_gaps) - set(case_names()))
        if unknown:
            raise BadExecutor(f"known_gaps names cases the suite does not have: {unknown}")
        try:
            value = request.getfixturevalue("executor")
        except BadExecutor:
            raise
        except Exception as error:
            raise BadExecutor(described(error)) from error
        return checked(value)

    # --- results and arguments -------------------------------------------------------

    def test_the_add_multiply_workflow_returns_its_result(self, conformance: Harness) -> None:
        done = conformance.run(workflows.add_multiply(conformance.executor), 1, 2)
        if done.result.result != 6:
            fail(
                "workflow(1, 2) = 2 * (1 + 2) did not return 6",
                f"status {done.result.status}, result {done.result.result!r}, "
                f"error {done.result.error!r}",
                "workflow",
            )

    def test_positional_and_keyword_arguments_reach_the_task(self, conformance: Harness) -> None:
        done = conformance.shared("arguments", _run_arguments)
        node = done.node("echo_arguments")
        wanted = ([1, "two", [3.0]], {"five": {"six": 6}, "four": 4})
        got = node["output"].get_deserialized() if node["output"] is not None else None
        if str(node["status"]) != "COMPLETED" or _as_lists(got) != _as_lists(wanted):
            fail(
                "echo_arguments(1, 'two', [3.0], four=4, five={'six': 6}) did not get "
                "its arguments",
                f"status {node['status']}, returned {got!r}, error {text_of(node).strip()!r}",
                "workflow",
            )

    def test_a_20_mb_argument_and_a_50_mb_result_come_back_whole(
        self, conformance: Harness
    ) -> None:
        import hashlib

        done = conformance.shared("arguments", _run_arguments)
        node = done.node("big_result")
        payload = tasks.blob(workflows.ARGUMENT_MB)
        wanted_size, wanted_digest = len(payload), hashlib.sha256(payload).hexdigest()
        if str(node["status"]) != "COMPLETED":
            fail("the task with a 20 MB argument failed", text_of(node).strip(), "workflow")
        size, digest, result = node["output"].get_deserialized()
        if (size, digest) != (wanted_size, wanted_digest) or result != tasks.blob(
            workflows.RESULT_MB
        ):
            fail(
                "the 20 MB argument or the 50 MB result changed on the way",
                f"argument of {size} bytes (sent {wanted_size}), result of {len(result)} bytes",
                "workflow",
            )

    # --- errors and output -----------------------------------------------------------

    def test_a_task_that_raises_fails_its_node_with_type_and_traceback(
        self, conformance: Harness
    ) -> None:
        done = conformance.shared("misc", _run_misc)
        node = done.node("raises")
        said = text_of(node)
        if str(node["status"]) != "FAILED":
            fail("a task that raised did not fail its node", f"status {node['status']}", "output")
        if not ("Traceback" in said and "ValueError: bad value 7 (misc)" in said):
            fail(
                "the node of a task that raised ValueError lacks the exception's type "
                "or its traceback",
                f"stderr and error {said.strip()!r}",
                "output",
            )

    def test_python_output_reaches_the_node(self, conformance: Harness) -> None:
        token = conformance.shared("output", _run_output)["token"]
        _assert_printed(
            conformance, "prints_from_python", token, ["python stdout"], ["python stderr"]
        )

    def test_output_of_a_subprocess_reaches_the_node(self, conformance: Harness) -> None:
        token = conformance.shared("output", _run_output)["token"]
        _assert_printed(
            conformance,
            "prints_from_a_subprocess",
            token,
            ["subprocess stdout"],
            ["subprocess stderr"],
        )

    def test_output_of_c_code_reaches_the_node(self, conformance: Harness) -> None:
        token = conformance.shared("output", _run_output)["token"]
        _assert_printed(conformance, "prints_from_c", token, ["fd 1", "C puts"], ["fd 2"])

    def test_output_stays_out_of_the_server_log(self, conformance: Harness) -> None:
        token = conformance.shared("output", _run_output)["token"]
        time.sleep(0.5)  # what the server itself printed has reached its log by now
        lines = [line for line in conformance.server_log().splitlines() if token in line]
        if lines:
            fail(
                "the tasks' output went to the Covalent server's log",
                f"{len(lines)} lines in the server's log, such as {lines[0]!r}, mixed "
                "with every other task's",
                "output",
            )

    def test_output_that_is_not_utf8_costs_no_result(self, conformance: Harness) -> None:
        try:
            done = conformance.run(
                workflows.one_task(
                    conformance.executor, tasks.prints_bytes_that_are_not_utf8, conformance.token
                )
            )
        except CaseFailure as failure:
            fail(
                "a task that printed bytes that are not UTF-8 cost the result",
                str(failure),
                "output",
            )
        if done.result.result != "printed":
            fail(
                "a task that printed bytes that are not UTF-8 lost its result",
                f"status {done.result.status}, result {done.result.result!r}",
                "output",
            )

    def test_an_unpicklable_result_fails_its_node_clearly(self, conformance: Harness) -> None:
        node = conformance.shared("misc", _run_misc).node("returns_something_unpicklable")
        said = text_of(node)
        if str(node["status"]) != "FAILED" or "pickle" not in said.lower():
            fail(
                "a task that returned a threading.Lock did not fail its node saying the "
                "result cannot be pickled",
                f"status {node['status']}, stderr and error {said.strip()!r}",
                "output",
            )

    # --- processes -------------------------------------------------------------------

    def test_equal_calls_are_not_merged(self, conformance: Harness) -> None:
        runs = Path(conformance.shared("misc", _run_misc).extra["runs"])
        lines = runs.read_text().splitlines() if runs.exists() else []
        if len(lines) != 2:
            fail(
                "two equal calls of a task in one workflow did not run twice",
                f"{len(lines)} runs for 2 calls (a task with side effects runs once)",
                "equal-calls",
            )

    def test_a_child_in_a_new_session_does_not_outlive_its_node(
        self, conformance: Harness
    ) -> None:
        done = conformance.shared("misc", _run_misc)
        pid_file = Path(done.extra["pid_file"])
        if not pid_file.exists():
            node = done.node("starts_a_child_in_a_new_session")
            fail("the task that starts a child did not run", text_of(node).strip(), "outlives")
        pid = int(pid_file.read_text())
        if not wait_until(lambda: process_gone(pid), limit=5):
            import os
            import signal

            os.kill(pid, signal.SIGKILL)  # the suite leaves no process behind
            fail(
                "a process the task started in a new session ran on after its node ended",
                f"`sleep 300` (pid {pid}) still running 5 s after the node ended",
                "outlives",
            )

    def test_fifty_tasks_at_once_all_complete(self, conformance: Harness) -> None:
        done = conformance.run(workflows.many(conformance.executor))
        statuses = [str(node["status"]) for node in done.nodes["square"]]
        if done.result.result != [index * index for index in range(workflows.MANY)]:
            failed = [node for node in done.nodes["square"] if str(node["status"]) != "COMPLETED"]
            first = f"; the first that did not says: {text_of(failed[0]).strip()!r}"
            fail(
                f"{workflows.MANY} tasks dispatched at once did not all complete",
                f"{statuses.count('COMPLETED')} COMPLETED, dispatch {done.result.status}: "
                f"{done.result.error!r}{first if failed else ''}",
                "threads",
            )

    # --- cancellation ----------------------------------------------------------------

    def test_cancel_stops_a_running_task(self, conformance: Harness) -> None:
        seen = conformance.shared("cancel", cancel_observed)
        if seen["problem"]:
            fail("ct.cancel did not stop the running task", seen["problem"], "cancel")
        if seen["status"] != "CANCELLED" or seen["beat_status"] != "CANCELLED":
            fail(
                "ct.cancel stopped the task but the dispatch or its node is not CANCELLED",
                f"dispatch {seen['status']}, node {seen['beat_status']}",
                "cancel",
            )

    def test_cancel_before_a_task_starts_keeps_it_from_running(self, conformance: Harness) -> None:
        seen = conformance.shared("cancel", cancel_observed)
        if seen["after_ran"] or seen["after_status"] == "COMPLETED":
            fail(
                "a task that had not started when ct.cancel was called ran anyway",
                f"its node {seen['after_status']}, ran: {seen['after_ran']}",
                "cancel",
            )

    # --- exits and crashes -----------------------------------------------------------

    def test_sys_exit_fails_only_its_node(self, conformance: Harness) -> None:
        _assert_only_its_node_fails(
            conformance, tasks.calls_sys_exit, "called sys.exit(3)", r"SystemExit"
        )

    def test_os_exit_fails_only_its_node(self, conformance: Harness) -> None:
        _assert_only_its_node_fails(
            conformance,
            tasks.calls_os_exit,
            "called os._exit(4)",
            r"\b(exit|exited|code|status)\b\D{0,12}\b4\b",
        )

    def test_a_segfault_fails_only_its_node(self, conformance: Harness) -> None:
        _assert_only_its_node_fails(
            conformance,
            tasks.segfaults,
            "crashed with SIGSEGV",
            r"SIGSEGV|signal 11|-11\b|[Ss]egmentation",
        )

    def test_a_dispatch_after_a_failed_one_works(self, conformance: Harness) -> None:
        conformance.shared("misc", _run_misc)  # a failed dispatch, if no case made one yet
        conformance.assert_next_task_runs("a failed dispatch")


def case_names() -> list[str]:
    """The names of the suite's cases, in the order they run."""
    return [name for name in vars(ExecutorConformance) if name.startswith("test_")]


def _as_lists(value: Any) -> Any:
    """``value`` with tuples as lists (a result may come back as either)."""
    if isinstance(value, (list, tuple)):
        return [_as_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_lists(item) for key, item in value.items()}
    return value


def _run_arguments(conformance: Harness) -> Any:
    return conformance.run(workflows.arguments(conformance.executor))


def _run_output(conformance: Harness) -> dict:
    done = conformance.run(workflows.output(conformance.executor, conformance.token))
    return {"token": conformance.token, "done": done}


def _run_misc(conformance: Harness) -> Any:
    runs, pid_file = conformance.folder / "runs", conformance.folder / "child-pid"
    done = conformance.run(workflows.misc(conformance.executor, str(runs), str(pid_file)))
    done.extra = {"runs": str(runs), "pid_file": str(pid_file)}
    return done


def _assert_printed(
    conformance: Harness, name: str, token: str, stdout: list[str], stderr: list[str]
) -> None:
    done = conformance.shared("output", _run_output)["done"]
    node = done.node(name)
    for stream, markers in (("stdout", stdout), ("stderr", stderr)):
        held = node.get(stream) or ""
        missing = [marker for marker in markers if f"{token} {marker}" not in held]
        if missing:
            fail(
                f"what {name} wrote to {stream} ({', '.join(missing)}) is not in its "
                f"node's {stream}",
                f"the node's {stream} is {held!r}",
                "output",
            )


def _assert_only_its_node_fails(conformance: Harness, task: Any, what: str, reason: str) -> None:
    try:
        done = conformance.run(workflows.exiting(conformance.executor, task))
    except CaseFailure as failure:
        conformance.assert_next_task_runs(f"a task that {what}")
        fail(f"a task that {what} did more than fail its node", str(failure), "output")
    node, sibling = done.node(task.__name__), done.node("square")
    said = text_of(node)
    if str(node["status"]) != "FAILED" or not re.search(reason, said):
        conformance.assert_next_task_runs(f"a task that {what}")
        fail(
            f"the node of a task that {what} does not say so",
            f"status {node['status']}, stderr and error {said.strip()!r}",
            "output",
        )
    if str(sibling["status"]) != "COMPLETED":
        fail(
            f"a task that {what} failed another task of its dispatch",
            f"the other node {sibling['status']}: {text_of(sibling).strip()!r}",
            "process",
        )
    conformance.assert_next_task_runs(f"a task that {what}")
